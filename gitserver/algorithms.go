package gitserver

import gossh "golang.org/x/crypto/ssh"

// The algorithms the server offers: what OpenSSH itself still offers, and
// nothing ssh-audit calls weak (e2e/sshaudit_test.go runs it). Key exchange
// is the post-quantum hybrid (OpenSSH 9.9 and later pick it) and
// curve25519 (every OpenSSH since 6.5, Debian 12's 9.2 among them); the
// NIST curves and the SHA-1 and finite-field groups are left out. Ciphers
// are AEAD only; MACs (used with none of them, but negotiated) are
// encrypt-then-MAC only. The host key is ed25519 (hostkey.go). Client keys
// sign with ed25519, ECDSA or RSA with SHA-2, never SHA-1.
var (
	kexAlgorithms = []string{gossh.KeyExchangeMLKEM768X25519, gossh.KeyExchangeCurve25519, "curve25519-sha256@libssh.org"}
	ciphers       = []string{gossh.CipherChaCha20Poly1305, gossh.CipherAES256GCM, gossh.CipherAES128GCM}
	macs          = []string{gossh.HMACSHA256ETM, gossh.HMACSHA512ETM}
	clientKeyAlgs = []string{
		gossh.KeyAlgoED25519, gossh.KeyAlgoSKED25519,
		gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521, gossh.KeyAlgoSKECDSA256,
		gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256,
	}
)
