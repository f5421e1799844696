package e2etest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	gossh "golang.org/x/crypto/ssh"
)

// Result is what a command printed and its exit status.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
}

// Run runs cmd with stdin ("" for none). The error is one that kept the
// command from running; an exit status is the Result's Code.
func Run(cmd *exec.Cmd, stdin string) (Result, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.Code, err = exit.ExitCode(), nil
	}
	return r, err
}

// Key is an ed25519 SSH key pair on disk.
type Key struct {
	Path   string // the private key; Path+".pub" the public one
	Signer gossh.Signer
}

// NewKey writes a new key pair, dir/name.key and dir/name.key.pub (with
// the comment name@test).
func NewKey(dir, name string) (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := gossh.MarshalPrivateKey(priv, name)
	if err != nil {
		return nil, err
	}
	k := &Key{Path: filepath.Join(dir, name+".key")}
	if err := os.WriteFile(k.Path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if k.Signer, err = gossh.NewSignerFromKey(priv); err != nil {
		return nil, err
	}
	return k, os.WriteFile(k.Path+".pub", []byte(AuthorizedKey(k.Signer)+" "+name+"@test\n"), 0o644) //nolint:gosec // a public key
}

// AuthorizedKey is the signer's public key as an authorized_keys line,
// without a comment.
func AuthorizedKey(s gossh.Signer) string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.PublicKey())))
}

// SSHOptions are the OpenSSH client's arguments for key and port: only
// that key, no prompt, the host key of a scratch known_hosts taken on
// first use, errors only.
func SSHOptions(keyPath, port, knownHosts string) []string {
	return []string{"-i", keyPath, "-p", port, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=" + knownHosts, "-o", "LogLevel=ERROR"}
}

// GitEnv is git's whole environment: home as HOME, no system config, a
// fixed author and committer, and sshCommand as its SSH.
func GitEnv(home, sshCommand string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_SSH_COMMAND=" + sshCommand,
	}
}
