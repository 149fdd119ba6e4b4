package childproc

import (
	"slices"
	"testing"
)

func TestEnv(t *testing.T) {
	t.Setenv("PATH", "/usr/bin")
	t.Setenv("LC_ALL", "C.UTF-8")
	t.Setenv("TZ", "UTC")
	t.Setenv("RDSBACKUP_ACCESS_KEY_SECRET", "secret")
	t.Setenv("RDSBACKUP_MASTER_KEY", "key")
	t.Setenv("SHOP_DB_PASSWORD", "pw")
	t.Setenv("HOME", "/root")
	env := Env("HOME=/private")
	for _, want := range []string{"PATH=/usr/bin", "LC_ALL=C.UTF-8", "TZ=UTC", "HOME=/private"} {
		if !slices.Contains(env, want) {
			t.Errorf("%s missing from %q", want, env)
		}
	}
	for _, kv := range env {
		switch kv {
		case "RDSBACKUP_ACCESS_KEY_SECRET=secret", "RDSBACKUP_MASTER_KEY=key", "SHOP_DB_PASSWORD=pw", "HOME=/root":
			t.Errorf("inherited %s", kv)
		}
	}
}
