// A sample Go app that does not compile.
package main

import "fmt"

func main() {
	fmt.Println("missing a closing parenthesis"
}
