package checks

import (
	"fmt"
	"sync"
	"unicode/utf8"
)

// headBuffer keeps the first max bytes written to it and counts the rest, so a
// chatty process never blocks on a full pipe and never costs more than max bytes.
// It is safe for concurrent use (exec may copy stdout and stderr from two
// goroutines when they are different writers).
type headBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int64
}

func newHeadBuffer(max int) *headBuffer { return &headBuffer{max: max} }

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += int64(len(p))
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// String returns the kept bytes, cut back to a whole UTF-8 character.
func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return trimPartialRune(b.buf, b.total > int64(len(b.buf)))
}

// trimPartialRune returns p as a string, dropping a multi-byte character cut in
// half at the end when p was truncated.
func trimPartialRune(p []byte, truncated bool) string {
	if truncated {
		for i := 1; i <= utf8.UTFMax && i <= len(p); i++ {
			if utf8.RuneStart(p[len(p)-i]) {
				if !utf8.FullRune(p[len(p)-i:]) {
					p = p[:len(p)-i]
				}
				break
			}
		}
	}
	return string(p)
}

// truncateOutput cuts an output given through the API to max bytes and says so,
// in Consul's words for TTL check updates.
func truncateOutput(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s ... (captured %d of %d bytes)", trimPartialRune([]byte(s[:max]), true), max, len(s))
}
