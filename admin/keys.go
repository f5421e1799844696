package admin

import (
	"bufio"
	"crypto/rsa"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/skiffhq/skiff"
)

// maxKeysInput caps what keys:add reads from stdin.
const maxKeysInput = 64 << 10

// ParsePublicKeys parses authorized_keys lines (blank lines and comments
// skipped) and refuses keys too weak to trust: DSA, RSA under 2048 bits,
// and certificates (skiff has no certificate authorities to trust).
func ParsePublicKeys(data []byte) ([]*skiff.Key, error) {
	var keys []*skiff.Key
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "ssh-dss ") {
			return nil, skiff.Errorf(skiff.EINVALID, "line %d is a DSA key, which is too weak; use ed25519 (ssh-keygen -t ed25519)", n+1)
		}
		pub, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, skiff.Errorf(skiff.EINVALID, "line %d is not an SSH public key (want a line like `ssh-ed25519 AAAA… you@laptop`)", n+1)
		}
		if len(options) > 0 {
			return nil, skiff.Errorf(skiff.EINVALID, "line %d has authorized_keys options, which skiff does not honour; give the bare key", n+1)
		}
		switch pub.Type() {
		case "ssh-dss": // x/crypto no longer names it (ssh.KeyAlgoDSA is deprecated), but parses it
			return nil, skiff.Errorf(skiff.EINVALID, "line %d is a DSA key, which is too weak; use ed25519 (ssh-keygen -t ed25519)", n+1)
		case ssh.KeyAlgoRSA:
			if ck, ok := pub.(ssh.CryptoPublicKey); ok {
				if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < 2048 {
					return nil, skiff.Errorf(skiff.EINVALID, "line %d is an RSA key of %d bits; use at least 2048 bits, or ed25519", n+1, rk.N.BitLen())
				}
			}
		}
		if _, ok := pub.(*ssh.Certificate); ok {
			return nil, skiff.Errorf(skiff.EINVALID, "line %d is an SSH certificate; give the plain public key", n+1)
		}
		keys = append(keys, &skiff.Key{
			Fingerprint: ssh.FingerprintSHA256(pub),
			Type:        pub.Type(),
			PublicKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
			Comment:     comment,
		})
	}
	if len(keys) == 0 {
		return nil, skiff.Errorf(skiff.EINVALID, "no public key on stdin; try: skiff keys:add <user> < ~/.ssh/id_ed25519.pub")
	}
	return keys, nil
}

func keysAdd(c *call) error {
	user := c.args[0]
	if err := skiff.ValidateUserName(user); err != nil {
		return err
	}
	if c.inv.Stdin == nil {
		return skiff.Errorf(skiff.EINVALID, "no public key on stdin")
	}
	data, err := io.ReadAll(io.LimitReader(bufio.NewReader(c.inv.Stdin), maxKeysInput+1))
	if err != nil {
		return fmt.Errorf("read keys: %w", err)
	}
	if len(data) > maxKeysInput {
		return skiff.Errorf(skiff.EINVALID, "too much input for keys:add (the limit is %d bytes)", maxKeysInput)
	}
	keys, err := ParsePublicKeys(data)
	if err != nil {
		return err
	}
	if _, err := c.services().Users.AddKey(c.ctx, user, c.flag("admin"), keys...); err != nil {
		return err
	}
	role := ""
	if c.flag("admin") {
		role = " (admin)"
	}
	for _, k := range keys {
		fmt.Fprintf(c.stderr(), "-----> Added key %s to %s%s\n", k.Fingerprint, user, role)
	}
	return nil
}

func keysList(c *call) error {
	keys, err := c.services().Users.ListKeys(c.ctx)
	if err != nil {
		return err
	}
	users, err := c.services().Users.ListUsers(c.ctx)
	if err != nil {
		return err
	}
	admin := map[string]bool{}
	for _, u := range users {
		admin[u.Name] = u.Admin
	}
	if c.json() {
		type keyOut struct {
			*skiff.Key
			Admin bool `json:"admin"`
		}
		out := make([]keyOut, len(keys))
		for i, k := range keys {
			out[i] = keyOut{k, admin[k.User]}
		}
		return c.writeJSON(out)
	}
	rows := make([][]string, len(keys))
	for i, k := range keys {
		role := "user"
		if admin[k.User] {
			role = "admin"
		}
		rows[i] = []string{k.User, role, k.Fingerprint, k.Type, orNone(k.Comment)}
	}
	c.table([]string{"USER", "ROLE", "FINGERPRINT", "TYPE", "COMMENT"}, rows)
	return nil
}

func keysRemove(c *call) error {
	fp := ""
	if len(c.args) == 2 {
		fp = c.args[1]
	}
	n, err := c.services().Users.RemoveKey(c.ctx, c.args[0], fp)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr(), "-----> Removed %d key(s) of %s\n", n, c.args[0])
	return nil
}
