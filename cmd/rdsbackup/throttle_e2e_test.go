package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestThrottlingPerKey floods the service from one RAM user's key that has
// no policy (every call is denied, yet each used to take a nonce), and
// checks that the flooder alone is refused, with Throttling.User, while
// the root key and a second RAM user keep getting 200.
func TestThrottlingPerKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, auth string
		flood      int
		why        string // in the flooder's message
	}{
		// Over its rate: 20 requests/s, 20 at once.
		{"rate", "auth:\n  ratePerKey:\n    rate: 20\n    burst: 20\n", 300, "Request was denied due to user flow control."},
		// Within a generous rate, but past its share of a small replay
		// memory (1,000 nonces, 62 per RAM user's key): before, the
		// flood filled the memory and every caller got 503.
		{"replay memory share", "auth:\n  maxNonces: 1000\n  ratePerKey:\n    rate: 100000\n    burst: 100000\n", 1100, "share of the replay protection memory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startService(t, t.TempDir(), tc.auth+instancesYAML("rm-t1"), testEnv(nil))
			root := rootClients(t, s)
			floodAK, floodSecret := createUserWithKey(t, root, "flooder")
			otherAK, otherSecret := createUserWithKey(t, root, "other")
			createPolicy(t, root, "t1", policyDocument("Allow", "rds:DescribeBackups", "*"))
			attachPolicy(t, root, "t1", "Custom", "other")

			var mu sync.Mutex
			codes := map[string]int{}
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < tc.flood; i += 4 {
						status, code, msg, err := sendSigned(s.Addr, floodAK, floodSecret)
						mu.Lock()
						switch {
						case err != nil:
							codes["transport error"]++
						case code == "Throttling.User" && status == 400:
							codes[code]++
							if codes["message"] == 0 && !strings.Contains(msg, tc.why) {
								codes["message"]++
								t.Errorf("Throttling.User message %q, want it to say %q", msg, tc.why)
							}
						default:
							codes[fmt.Sprintf("%s (%d)", code, status)]++
						}
						mu.Unlock()
					}
				})
			}
			// Meanwhile, and after: root and the other user get through.
			for i := range 10 {
				for _, k := range [][2]string{{rootKeyID, rootKeySecret}, {otherAK, otherSecret}} {
					if status, code, msg, err := sendSigned(s.Addr, k[0], k[1]); err != nil || status != 200 {
						t.Errorf("call %d by %s during the flood: %d %s %s %v", i, k[0], status, code, msg, err)
					}
				}
				time.Sleep(60 * time.Millisecond)
			}
			wg.Wait()
			for _, k := range [][2]string{{rootKeyID, rootKeySecret}, {otherAK, otherSecret}} {
				if status, code, msg, err := sendSigned(s.Addr, k[0], k[1]); err != nil || status != 200 {
					t.Errorf("call by %s after the flood: %d %s %s %v", k[0], status, code, msg, err)
				}
			}
			t.Logf("flooder's answers: %v", codes)
			if codes["Throttling.User"] < tc.flood/2 {
				t.Errorf("only %d of %d flooding calls throttled: %v", codes["Throttling.User"], tc.flood, codes)
			}
			for k := range codes {
				if k != "Throttling.User" && k != "Forbidden.RAM (403)" && k != "message" {
					t.Errorf("flooder got %s %d times", k, codes[k])
				}
			}
		})
	}
}

var throttleHTTP = &http.Client{Timeout: 20 * time.Second}

// sendSigned makes one V2-signed DescribeBackups call with a key, without
// failing the test (it runs in goroutines).
func sendSigned(addr, ak, secret string) (status int, code, msg string, err error) {
	p := signV2(http.MethodPost, describeBackupsParams("DBInstanceId", "rm-t1"), ak, secret, time.Now())
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/?"+p.Encode(), nil)
	if err != nil {
		return 0, "", "", err
	}
	resp, err := throttleHTTP.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", "", err
	}
	var e apiError
	if resp.StatusCode != 200 {
		if err := json.Unmarshal(body, &e); err != nil {
			return resp.StatusCode, "", string(body), err
		}
	}
	return resp.StatusCode, e.Code, e.Message, nil
}
