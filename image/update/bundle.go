package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// Magic opens every bundle; the digit is the format's version.
const Magic = "SENSORD-BUNDLE-1\n"

// MaxManifestBytes bounds the manifest read before its signature is
// checked: a real one is a few hundred bytes.
const MaxManifestBytes = 64 << 10

// Compatible names the appliance a bundle is built for; a bundle for
// anything else is refused.
const Compatible = "sensord-rpi-arm64"

// Errors a caller can tell apart.
var (
	ErrFormat    = errors.New("update: not a sensord bundle")
	ErrSignature = errors.New("update: bad signature")
	ErrForeign   = errors.New("update: signed by another key")
	ErrPayload   = errors.New("update: payload does not match its signed hash (truncated or tampered with)")
	ErrKey       = errors.New("update: bad key file")
)

// Manifest describes a bundle's payload.
type Manifest struct {
	Compatible string `json:"compatible"`
	Version    string `json:"version"`
	// Release orders bundles: each build's is higher than every earlier
	// one's (image/README.md, "Release numbers"). Absent (0) in bundles
	// built before release numbers; omitted when 0, so such a bundle can
	// still be made for cards whose updater knows no release field.
	Release       uint64 `json:"release,omitempty"`
	Kernel        string `json:"kernel"` // the kernel release whose modules the root slot holds
	PayloadBytes  int64  `json:"payload_bytes"`
	PayloadSHA256 string `json:"payload_sha256"`
	KeyID         string `json:"key_id"` // KeyID of the signing key, to name it in errors
}

// KeyID is a short, printable name of a public key: the first 8 bytes of
// the SHA-256 of its raw 32 bytes, in hex.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// ReadPrivateKey reads a PKCS#8 PEM ed25519 private key, as
// `openssl genpkey -algorithm ed25519` writes it.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: %s holds no PEM \"PRIVATE KEY\"", ErrKey, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKey, path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s is a %T, want ed25519", ErrKey, path, k)
	}
	return ek, nil
}

// ReadPublicKey reads a PKIX PEM ed25519 public key
// (`openssl pkey -pubout`).
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	return ParsePublicKey(b)
}

// ParsePublicKey parses a PKIX PEM ed25519 public key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: no PEM \"PUBLIC KEY\"", ErrKey)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T, want ed25519", ErrKey, k)
	}
	return ek, nil
}

// MarshalPublicKey is the PKIX PEM form of pub.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Write writes a bundle of payload to w, signed with key. m's payload
// fields and KeyID are filled in here; payload is read twice (hash, copy).
func Write(w io.Writer, m Manifest, payload io.ReadSeeker, key ed25519.PrivateKey) error {
	h := sha256.New()
	n, err := io.Copy(h, payload)
	if err != nil {
		return fmt.Errorf("update: hash payload: %w", err)
	}
	if _, err := payload.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("update: rewind payload: %w", err)
	}
	m.PayloadBytes = n
	m.PayloadSHA256 = hex.EncodeToString(h.Sum(nil))
	m.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	js, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("update: manifest: %w", err)
	}
	if len(js) > MaxManifestBytes {
		return fmt.Errorf("update: manifest %d bytes, over %d", len(js), MaxManifestBytes)
	}
	head := header(js)
	if _, err := w.Write(head); err != nil {
		return err
	}
	if _, err := w.Write(ed25519.Sign(key, head)); err != nil {
		return err
	}
	c, err := io.Copy(w, payload)
	if err != nil {
		return fmt.Errorf("update: write payload: %w", err)
	}
	if c != n {
		return fmt.Errorf("update: payload changed while bundling (%d then %d bytes)", n, c)
	}
	return nil
}

func header(manifest []byte) []byte {
	head := make([]byte, 0, len(Magic)+4+len(manifest))
	head = append(head, Magic...)
	head = binary.BigEndian.AppendUint32(head, uint32(len(manifest)))
	return append(head, manifest...)
}

// Bundle is an opened bundle whose manifest signature has verified.
type Bundle struct {
	Manifest Manifest
	// Offset is where the payload starts in the file.
	Offset int64
	r      io.ReaderAt
}

// Open reads the header of the bundle in r and verifies its signature
// with pub. The payload is not read: Verify or Payload do that.
func Open(r io.ReaderAt, pub ed25519.PublicKey) (*Bundle, error) {
	fixed := make([]byte, len(Magic)+4)
	if _, err := r.ReadAt(fixed, 0); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if string(fixed[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: no %q at its start", ErrFormat, Magic[:len(Magic)-1])
	}
	n := binary.BigEndian.Uint32(fixed[len(Magic):])
	if n == 0 || n > MaxManifestBytes {
		return nil, fmt.Errorf("%w: manifest length %d", ErrFormat, n)
	}
	rest := make([]byte, int(n)+ed25519.SignatureSize)
	if _, err := r.ReadAt(rest, int64(len(fixed))); err != nil {
		return nil, fmt.Errorf("%w: short header: %w", ErrFormat, err)
	}
	head := append(fixed, rest[:n]...)
	sig := rest[n:]
	if !ed25519.Verify(pub, head, sig) {
		// Name the key the bundle claims when it parses, so "signed by
		// another key" can be told from "tampered with".
		var m Manifest
		if json.Unmarshal(rest[:n], &m) == nil && m.KeyID != "" && m.KeyID != KeyID(pub) {
			return nil, fmt.Errorf("%w: bundle names key %s, this appliance trusts %s", ErrForeign, m.KeyID, KeyID(pub))
		}
		return nil, fmt.Errorf("%w: the manifest's signature does not verify with key %s (tampered with)", ErrSignature, KeyID(pub))
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(rest[:n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrFormat, err)
	}
	if m.PayloadBytes <= 0 || len(m.PayloadSHA256) != 64 {
		return nil, fmt.Errorf("%w: manifest without payload size or hash", ErrFormat)
	}
	// The version goes into the slot state's KEY=value lines.
	if err := checkValue("version", m.Version); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrFormat, err)
	}
	return &Bundle{Manifest: m, Offset: int64(len(head) + len(sig)), r: r}, nil
}

// ReadHead reads a bundle's header and signature from the start of r (an
// upload as it arrives), without checking them: Open(bytes.NewReader(head))
// does. The bytes are returned whatever the error, so a caller can keep
// what it read.
func ReadHead(r io.Reader) ([]byte, error) {
	fixed := make([]byte, len(Magic)+4)
	if n, err := io.ReadFull(r, fixed); err != nil {
		return fixed[:n], fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if string(fixed[:len(Magic)]) != Magic {
		return fixed, fmt.Errorf("%w: no %q at its start", ErrFormat, Magic[:len(Magic)-1])
	}
	n := binary.BigEndian.Uint32(fixed[len(Magic):])
	if n == 0 || n > MaxManifestBytes {
		return fixed, fmt.Errorf("%w: manifest length %d", ErrFormat, n)
	}
	rest := make([]byte, int(n)+ed25519.SignatureSize)
	k, err := io.ReadFull(r, rest)
	head := append(fixed, rest[:k]...)
	if err != nil {
		return head, fmt.Errorf("%w: short header: %w", ErrFormat, err)
	}
	return head, nil
}

// Payload is the payload's bytes as the file holds them (unverified until
// read to the end through CheckHash).
func (b *Bundle) Payload() *io.SectionReader {
	return io.NewSectionReader(b.r, b.Offset, b.Manifest.PayloadBytes)
}

// CheckHash compares data's length and SHA-256 with the signed manifest.
func (b *Bundle) CheckHash(r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("update: read payload: %w", err)
	}
	if n != b.Manifest.PayloadBytes {
		return fmt.Errorf("%w: %d of %d bytes", ErrPayload, n, b.Manifest.PayloadBytes)
	}
	if hex.EncodeToString(h.Sum(nil)) != b.Manifest.PayloadSHA256 {
		return fmt.Errorf("%w: SHA-256 differs", ErrPayload)
	}
	return nil
}

// Verify reads the whole payload and checks it, and that nothing follows
// it in a file of size size.
func (b *Bundle) Verify(size int64) error {
	if want := b.Offset + b.Manifest.PayloadBytes; size != want {
		return fmt.Errorf("%w: file is %d bytes, the manifest says %d", ErrPayload, size, want)
	}
	return b.CheckHash(b.Payload())
}
