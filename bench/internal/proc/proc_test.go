package proc

import (
	"os"
	"runtime"
	"testing"
)

func TestSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	t.Parallel()
	if _, err := CPU(os.Getpid()); err != nil {
		t.Fatalf("CPU: got %v, want nil", err)
	}
	s, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatalf("ReadStatus: got %v, want nil", err)
	}
	if s.RSSKiB <= 0 || s.HWMKiB < s.RSSKiB || s.Threads < 1 {
		t.Fatalf("got %+v, want RSS > 0, HWM >= RSS, Threads >= 1", s)
	}
}
