// Package sealed remembers what sealed values open to, so that a catalog
// need not decrypt an instance's DSN on every DescribeBackups.
package sealed

import (
	"sync"

	"github.com/rdsbackup/rdsbackup"
)

// maxEntries bounds the cache; past it the cache starts again empty. Every
// sync of the instances seals their DSNs anew, so old entries pile up.
const maxEntries = 1 << 16

// Cache opens sealed values with Box and remembers the plaintexts, keyed by
// the sealed bytes themselves. A sealed value is immutable and opens to one
// plaintext, so an entry is never stale, whoever writes the catalog: unlike
// a cache of rows, it needs no invalidation when another process changes
// them.
type Cache struct {
	Box rdsbackup.SecretBox

	mu sync.RWMutex
	m  map[string]string
}

// Open returns the plaintext of sealed.
func (c *Cache) Open(sealed []byte) (string, error) {
	c.mu.RLock()
	plain, ok := c.m[string(sealed)]
	c.mu.RUnlock()
	if ok {
		return plain, nil
	}
	b, err := c.Box.Open(sealed)
	if err != nil {
		return "", err
	}
	plain = string(b)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxEntries {
		c.m = map[string]string{}
	}
	c.m[string(sealed)] = plain
	c.mu.Unlock()
	return plain, nil
}
