// Package golden compares test output with the image's golden files in
// image/testdata, for the packages under image/ that render files.
package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Check compares got with image/testdata/name, seen from a package
// directory directly under image/. With update it first rewrites the file
// with got. pkg names the package for the hint in a failure
// ("go test ./image/<pkg> -update").
func Check(t testing.TB, pkg, name string, got []byte, update bool) {
	t.Helper()
	path := filepath.Join("..", "testdata", name)
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./image/%s -update creates it)", err, pkg)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./image/%s -update rewrites it); got:\n%s", path, pkg, got)
	}
}
