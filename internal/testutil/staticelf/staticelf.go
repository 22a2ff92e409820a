// Package staticelf writes the smallest file the node-local API endpoint accepts as a statically linked
// executable (localendpoint.CheckStatic): an ELF header without a program interpreter or dynamic section. Tests
// install it where kubeboot would install itself, without building a binary.
package staticelf

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// Write writes the file into a temporary directory of t and returns its path.
func Write(t testing.TB) string {
	t.Helper()
	h := make([]byte, 64)
	copy(h, []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */})
	le := binary.LittleEndian
	le.PutUint16(h[16:], 2)  // ET_EXEC
	le.PutUint16(h[18:], 62) // EM_X86_64
	le.PutUint32(h[20:], 1)  // EV_CURRENT
	le.PutUint16(h[52:], 64) // e_ehsize
	le.PutUint16(h[54:], 56) // e_phentsize
	le.PutUint16(h[58:], 64) // e_shentsize
	p := filepath.Join(t.TempDir(), "kubeboot")
	if err := os.WriteFile(p, h, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
