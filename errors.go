package skiff

import (
	"errors"
	"fmt"
)

// Error codes. Each edge (SSH commands, the control socket, the push hook)
// maps them to its own protocol in one place.
const (
	ECONFLICT     = "conflict"     // the thing exists already, or another operation holds it
	EINTERNAL     = "internal"     // a bug or an environment failure; details go to the log
	EINVALID      = "invalid"      // the input is malformed; the message says what is allowed
	ENOTFOUND     = "not_found"    // no such thing (only said to callers who may know it exists)
	EUNAUTHORIZED = "unauthorized" // the caller may not do this, or the thing is not theirs
	EUNAVAILABLE  = "unavailable"  // a resource is busy or exhausted; trying later may work
)

// Error is an error meant for the user: Message says what happened and, where
// it can, what to do about it. Errors without a code are internal.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the *Error's message,
// or a generic text for internal errors, whose details must not reach users.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error; the server log has the details"
}

// ErrNotAuthorized is the one answer to any request for an app that the
// caller may not see, whether or not it exists: no existence oracle.
var ErrNotAuthorized = &Error{Code: EUNAUTHORIZED, Message: "not authorized"}
