package router

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"path"
	"strings"

	"github.com/skiffhq/skiff"
)

// ParseCertBundle reads what `certs:add` receives on stdin: PEM blocks
// holding a certificate chain and its private key in any order, or a tar
// holding server.crt and server.key (as Dokku takes them). It returns the
// chain (leaf first) and the key as PEM, checked to belong together.
func ParseCertBundle(data []byte) (certPEM, keyPEM []byte, err error) {
	if len(data) > skiff.MaxCertBundle {
		return nil, nil, skiff.Errorf(skiff.EINVALID, "certificate bundle larger than %d bytes", skiff.MaxCertBundle)
	}
	if isTar(data) {
		if data, err = readDokkuTar(data); err != nil {
			return nil, nil, err
		}
	}
	var certs []*pem.Block
	var key *pem.Block
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			certs = append(certs, b)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			if key != nil {
				return nil, nil, skiff.Errorf(skiff.EINVALID, "more than one private key in the bundle")
			}
			key = b
		}
	}
	if len(certs) == 0 || key == nil {
		return nil, nil, skiff.Errorf(skiff.EINVALID, "the bundle needs a PEM certificate and its private key (cat cert.pem key.pem | ssh … certs:add APP)")
	}
	keyPEM = pem.EncodeToMemory(key)
	// Put the certificate that matches the key first: tls needs the leaf first.
	leaf := -1
	for i, c := range certs {
		if _, err := tls.X509KeyPair(pem.EncodeToMemory(c), keyPEM); err == nil {
			leaf = i
			break
		}
	}
	if leaf < 0 {
		return nil, nil, skiff.Errorf(skiff.EINVALID, "the private key does not belong to any certificate in the bundle")
	}
	out := bytes.NewBuffer(pem.EncodeToMemory(certs[leaf]))
	for i, c := range certs {
		if i != leaf {
			out.Write(pem.EncodeToMemory(c))
		}
	}
	if _, err := loadKeyPair(out.Bytes(), keyPEM); err != nil {
		return nil, nil, err
	}
	return out.Bytes(), keyPEM, nil
}

// loadKeyPair parses a chain and key into a tls.Certificate with its Leaf.
func loadKeyPair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, skiff.Errorf(skiff.EINVALID, "invalid certificate or key: %v", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, skiff.Errorf(skiff.EINVALID, "invalid certificate: %v", err)
		}
	}
	if _, ok := c.PrivateKey.(crypto.Signer); !ok {
		return nil, skiff.Errorf(skiff.EINVALID, "unsupported private key type")
	}
	return &c, nil
}

func isTar(data []byte) bool {
	return len(data) >= 512 && bytes.Equal(data[257:262], []byte("ustar"))
}

// readDokkuTar returns server.crt followed by server.key from a tar; other
// entries are ignored, and nothing is written to disk.
func readDokkuTar(data []byte) ([]byte, error) {
	tr := tar.NewReader(bytes.NewReader(data))
	var crt, key []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, skiff.Errorf(skiff.EINVALID, "invalid tar: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		var dst *[]byte
		switch path.Base(h.Name) {
		case "server.crt":
			dst = &crt
		case "server.key":
			dst = &key
		default:
			continue
		}
		if *dst, err = io.ReadAll(io.LimitReader(tr, skiff.MaxCertBundle)); err != nil {
			return nil, skiff.Errorf(skiff.EINVALID, "invalid tar: %v", err)
		}
	}
	if crt == nil || key == nil {
		return nil, skiff.Errorf(skiff.EINVALID, "the tar must hold server.crt and server.key")
	}
	return append(append(crt, '\n'), key...), nil
}
