package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup/rpc"
)

// Fixed credentials of the benchmark's service (never used elsewhere).
const (
	benchKeyID     = "LTAIbenchmarkkey00000001"
	benchKeySecret = "benchmarksecret0000000000000001"
	benchRegion    = "cn-hangzhou"
	// base64 of 32 bytes 0x07.
	benchMasterKey = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
)

// sdkUserAgent is what the aliyun Go SDK v1 sends (its DefaultUserAgent).
var sdkUserAgent = fmt.Sprintf("AlibabaCloud (%s; %s) Golang/%s Core/0.01", runtime.GOOS, runtime.GOARCH, strings.TrimPrefix(runtime.Version(), "go"))

// scenario is one kind of request. params adds the scenario's parameters
// for a request on instance inst.
type scenario struct {
	name    string
	desc    string
	trivial bool // sent to the trivial baseline server
	// page30 marks the scenarios the p99 target (page of 30) applies to.
	page30 bool
	params func(r *rand.Rand, l layout, inst int, p url.Values)
	// target is the service the scenario is sent to (nil: the trivial
	// baseline).
	target *target
}

// target is one service under test: the same binary on one catalog.
type target struct {
	catalog string // sqlite or postgres, with /nonces=memory or catalog when both are run
	svc     *child
	base    string
	p99     time.Duration // the p99 target of its pages of 30
}

func scenarios() []*scenario {
	none := func(*rand.Rand, layout, int, url.Values) {}
	return []*scenario{
		{name: "nofilter", desc: "no filter (page 1 of 30)", page30: true, params: none},
		{name: "status", desc: "BackupStatus=Success", page30: true, params: func(_ *rand.Rand, _ layout, _ int, p url.Values) {
			p.Set("BackupStatus", "Success")
		}},
		{name: "mode", desc: "BackupMode=Automated", page30: true, params: func(_ *rand.Rand, _ layout, _ int, p url.Values) {
			p.Set("BackupMode", "Automated")
		}},
		{name: "type", desc: "BackupType=FullBackup", page30: true, params: func(_ *rand.Rand, _ layout, _ int, p url.Values) {
			p.Set("BackupType", "FullBackup")
		}},
		{name: "id", desc: "BackupId=<a set of the instance>", page30: true, params: func(r *rand.Rand, l layout, inst int, p url.Values) {
			p.Set("BackupId", strconv.FormatInt(l.setID(inst, r.IntN(l.setsOf(inst))), 10))
		}},
		{name: "range", desc: "StartTime..EndTime, one month", page30: true, params: func(r *rand.Rand, _ layout, _ int, p url.Values) {
			from := seedBase.Add(time.Duration(r.IntN(335*24*60)) * time.Minute)
			p.Set("StartTime", from.Format("2006-01-02T15:04Z"))
			p.Set("EndTime", from.Add(30*24*time.Hour).Format("2006-01-02T15:04Z"))
		}},
		{name: "page3", desc: "PageSize=30 PageNumber=3 (deepest full page)", page30: true, params: func(_ *rand.Rand, _ layout, _ int, p url.Values) {
			p.Set("PageSize", "30")
			p.Set("PageNumber", "3")
		}},
		{name: "page100", desc: "PageSize=100 PageNumber=1", params: func(_ *rand.Rand, _ layout, _ int, p url.Values) {
			p.Set("PageSize", "100")
			p.Set("PageNumber", "1")
		}},
		{name: "trivial", desc: "trivial net/http handler, fixed body", trivial: true, params: none},
	}
}

// client is one load worker: its own http.Client and Transport, so its own
// keep-alive connection, and its own random source.
type client struct {
	http *http.Client
	rng  *rand.Rand
	buf  []byte
}

func newClient(seed uint64) *client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	return &client{
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		rng:  rand.New(rand.NewPCG(seed, seed^0x5bd1e995)),
		buf:  make([]byte, 32<<10),
	}
}

// newRequest builds a DescribeBackups call the way the aliyun Go SDK v1
// does (sdk/auth/rpc_signature_composer.go): every parameter in the query
// of a POST with an empty form body, signed with V2 (HMAC-SHA1) over the
// query, a fresh 32-hex-digit nonce per request.
func (c *client) newRequest(base string, sc *scenario, l layout) *http.Request {
	inst := c.rng.IntN(l.Instances)
	p := make(url.Values, 16)
	p.Set("Action", "DescribeBackups")
	p.Set("Version", "2014-08-15")
	p.Set("Format", "JSON")
	p.Set("AccessKeyId", benchKeyID)
	p.Set("SignatureMethod", "HMAC-SHA1")
	p.Set("SignatureVersion", "1.0")
	p.Set("SignatureType", "")
	var nonce [16]byte
	for i := 0; i < 16; i += 8 {
		v := c.rng.Uint64()
		for j := 0; j < 8; j++ {
			nonce[i+j] = byte(v >> (8 * j))
		}
	}
	p.Set("SignatureNonce", hex.EncodeToString(nonce[:]))
	p.Set("Timestamp", time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	p.Set("RegionId", benchRegion)
	p.Set("DBInstanceId", instanceID(inst))
	sc.params(c.rng, l, inst, p)
	p.Set("Signature", rpc.SignV2(benchKeySecret, rpc.StringToSignV2(http.MethodPost, p)))

	req, err := http.NewRequest(http.MethodPost, base+"/?"+p.Encode(), strings.NewReader(""))
	if err != nil {
		panic(err) // base is ours
	}
	h := req.Header
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("x-acs-action", "DescribeBackups")
	h.Set("x-acs-version", "2014-08-15")
	h.Set("x-acs-credentials-provider", "static_ak")
	h.Set("x-sdk-client", "golang/1.0.0")
	h.Set("x-sdk-invoke-type", "normal")
	h.Set("Accept-Encoding", "identity")
	h.Set("User-Agent", sdkUserAgent)
	return req
}

// do sends req and reads the whole response. A non-200 status is an error
// carrying the start of the body.
func (c *client) do(req *http.Request) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	_, err = io.CopyBuffer(io.Discard, resp.Body, c.buf)
	return err
}

// fetch sends one request and returns the whole body (used to validate
// each scenario and to size the trivial server's body).
func (c *client) fetch(req *http.Request) ([]byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, b)
	}
	return b, nil
}

// result is what one scenario measured (over all rounds).
type result struct {
	hist     histogram
	elapsed  time.Duration // measured time, summed over rounds
	errors   uint64
	firstErr string
	srvCPU   time.Duration // CPU time of the target process in the windows
	srvReads int64         // its read system calls (syscr) in the windows
	cliCPU   time.Duration // CPU time of this process in the windows
}

func (r *result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.hist.n) / r.elapsed.Seconds()
}

// runWindow drives base with every client for warmup + d. Requests that
// start after the warm-up and finish within the window are measured; the
// window's length is the measured time. The CPU time and read system calls
// of the target process pid are read at the window's edges.
func runWindow(ctx context.Context, clients []*client, base string, sc *scenario, l layout, warmup, d time.Duration, pid int, res *result) {
	spid := strconv.Itoa(pid)
	start := time.Now()
	measureFrom := start.Add(warmup)
	measureTo := measureFrom.Add(d)
	hists := make([]*histogram, len(clients))
	errs := make([]uint64, len(clients))
	firstErrs := make([]string, len(clients))

	var srv0, cli0 time.Duration
	var reads0 int64
	markStart := func() { srv0, cli0, reads0 = procCPU(pid), selfCPU(), readSyscalls(spid) }
	var wg sync.WaitGroup
	for w, c := range clients {
		hists[w] = new(histogram)
		wg.Go(func() {
			h := hists[w]
			for ctx.Err() == nil {
				req := c.newRequest(base, sc, l)
				t0 := time.Now()
				if !t0.Before(measureTo) {
					return
				}
				err := c.do(req)
				t1 := time.Now()
				if err != nil { // counted in the warm-up too: every answer must be 200
					errs[w]++
					if firstErrs[w] == "" {
						firstErrs[w] = err.Error()
					}
					continue
				}
				if t0.Before(measureFrom) {
					continue
				}
				if t1.After(measureTo) {
					return
				}
				h.record(t1.Sub(t0))
			}
		})
	}
	// Read CPU counters at the window's edges from here, not from a worker.
	time.Sleep(time.Until(measureFrom))
	markStart()
	time.Sleep(time.Until(measureTo))
	srv1, cli1, reads1 := procCPU(pid), selfCPU(), readSyscalls(spid)
	wg.Wait()

	res.elapsed += d
	res.srvCPU += srv1 - srv0
	res.srvReads += reads1 - reads0
	res.cliCPU += cli1 - cli0
	for w := range clients {
		res.hist.merge(hists[w])
		res.errors += errs[w]
		if res.firstErr == "" && firstErrs[w] != "" {
			res.firstErr = firstErrs[w]
		}
	}
}
