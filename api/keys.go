package api

import (
	"context"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/rpc"
)

// keyCache keeps recently used access keys in memory so that authenticating
// a call does not query and decrypt the key each time. Writes made through
// this server invalidate it at once; keyTTL bounds how long a change made
// elsewhere (another node sharing the catalog) can go unseen.
type keyCache struct {
	mu   sync.Mutex
	keys map[string]cachedKey
}

type cachedKey struct {
	key     *rdsbackup.AccessKey
	expires time.Time
}

const (
	keyTTL      = 5 * time.Second
	maxKeyCache = 10000
)

func (s *Server) accessKey(ctx context.Context, id string) (*rdsbackup.AccessKey, error) {
	now := s.Now()
	s.keys.mu.Lock()
	if e, ok := s.keys.keys[id]; ok && now.Before(e.expires) {
		s.keys.mu.Unlock()
		return e.key, nil
	}
	s.keys.mu.Unlock()
	k, err := s.Identity.FindAccessKey(ctx, id)
	if err != nil {
		return nil, err
	}
	s.keys.mu.Lock()
	if s.keys.keys == nil || len(s.keys.keys) >= maxKeyCache {
		s.keys.keys = map[string]cachedKey{}
	}
	s.keys.keys[id] = cachedKey{key: k, expires: now.Add(keyTTL)}
	s.keys.mu.Unlock()
	return k, nil
}

// forgetKeys drops cached keys after a change to keys or users.
func (s *Server) forgetKeys() {
	s.keys.mu.Lock()
	s.keys.keys = nil
	s.keys.mu.Unlock()
}

// lookupKey is the Authenticator's view of the key store.
func (s *Server) lookupKey(ctx context.Context, id string) (rpc.Key, error) {
	k, err := s.accessKey(ctx, id)
	if err != nil {
		return rpc.Key{}, err
	}
	return rpc.Key{Secret: k.Secret, Active: k.Status == rdsbackup.KeyActive, Root: k.Root()}, nil
}
