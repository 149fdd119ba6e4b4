package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rdsbackup test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a server certificate for 127.0.0.1 with serial and its key
// as PEM files (replacing them), as a renewal would.
func (ca *testCA) issue(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedSerial returns the serial number of the certificate a new TLS
// connection to addr is served.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLS serves the API over HTTPS with a certificate from a test CA: the
// official Go SDK talks to it with Scheme HTTPS, download links are https,
// acs:SecureTransport is true, plain HTTP gets no answer from the API, and
// a renewed certificate is served after a hangup signal.
func TestTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	ca.issue(t, certFile, keyFile, 100)
	dataDir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndataDir: %s\naccountId: \"1234567890\"\nbackups:\n  schedule: false\ntls:\n  certFile: %s\n  keyFile: %s\n%s",
		dataDir, certFile, keyFile, instancesYAML("rm-tls1"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The catalog exists before the service starts, with one set.
	db := openCatalog(t, dataDir)
	insertSets(t, db, setSpec{ID: 7, Instance: "rm-tls1", Start: filterBase})
	db.Close()

	hangup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	stderr := &syncBuffer{}
	m := &Main{Stdout: &syncBuffer{}, Stderr: stderr, Getenv: testEnv(nil), Ready: func(a string) { ready <- a }, Hangup: hangup}
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, []string{"serve", "--config", cfgPath}) }()
	t.Cleanup(func() { cancel(); <-done })
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("serve exited with %d: %s", code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve not ready after 30s")
	}

	sdkClient := func(t *testing.T, ak, secret string, pool *x509.CertPool) *rds.Client {
		t.Helper()
		config := sdk.NewConfig().WithScheme("HTTPS")
		config.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		c, err := rds.NewClientWithOptions(testRegion, config, credentials.NewAccessKeyCredential(ak, secret))
		if err != nil {
			t.Fatal(err)
		}
		c.Domain = addr
		return c
	}
	describe := func(c *rds.Client) (*rds.DescribeBackupsResponse, error) {
		r := rds.CreateDescribeBackupsRequest()
		r.DBInstanceId = "rm-tls1"
		return c.DescribeBackups(r)
	}

	resp, err := describe(sdkClient(t, rootKeyID, rootKeySecret, ca.pool))
	if err != nil {
		t.Fatalf("DescribeBackups over HTTPS: %v", err)
	}
	if len(resp.Items.Backup) != 1 {
		t.Fatalf("backups: %s", resp.GetHttpContentString())
	}
	b := resp.Items.Backup[0]
	if !strings.HasPrefix(b.BackupDownloadURL, "https://"+addr+"/") || !strings.HasPrefix(b.BackupIntranetDownloadURL, "https://") {
		t.Errorf("links %q %q, want https://%s/...", b.BackupDownloadURL, b.BackupIntranetDownloadURL, addr)
	}
	// The link is served over the same HTTPS listener (the set's data is
	// not in storage, so not 200, but an answer from the download handler).
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	if lr, err := hc.Get(b.BackupDownloadURL); err != nil {
		t.Errorf("link over HTTPS: %v", err)
	} else {
		lr.Body.Close()
		if lr.StatusCode == http.StatusBadRequest || lr.StatusCode == http.StatusForbidden {
			t.Errorf("link over HTTPS: %s", lr.Status)
		}
	}

	// Without the CA the SDK refuses the certificate: it is verified.
	if _, err := describe(sdkClient(t, rootKeyID, rootKeySecret, x509.NewCertPool())); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an unknown CA was accepted: %v", err)
	}
	// Plain HTTP gets no API answer on the HTTPS port.
	if r, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz"); err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Errorf("plain HTTP answered 200")
		}
	}

	// acs:SecureTransport is true over TLS.
	root := newClients(t, addr, rootKeyID, rootKeySecret)
	root.RDS = sdkClient(t, rootKeyID, rootKeySecret, ca.pool)
	root.RAM.SetTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}})
	root.RAM.GetConfig().WithScheme("HTTPS")
	ak, secret := createUserWithKey(t, root, "tls-user")
	createPolicy(t, root, "secure-only", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:DescribeBackups","Resource":"*",
		"Condition":{"Bool":{"acs:SecureTransport":"true"}}}]}`)
	attachPolicy(t, root, "secure-only", "Custom", "tls-user")
	if _, err := describe(sdkClient(t, ak, secret, ca.pool)); err != nil {
		t.Errorf("RAM user allowed only over secure transport, over HTTPS: %v", err)
	}

	// A renewed certificate is served after the hangup signal.
	if got := servedSerial(t, addr, ca.pool); got != 100 {
		t.Fatalf("serial %d before renewal", got)
	}
	ca.issue(t, certFile, keyFile, 101)
	hangup <- os.Interrupt // any signal value: serve reloads on each
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial(t, addr, ca.pool) != 101 {
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate is not served:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A broken renewal keeps the certificate in use.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	hangup <- os.Interrupt
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "TLS certificate not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the failed reload:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := servedSerial(t, addr, ca.pool); got != 101 {
		t.Errorf("serial %d after a failed reload, want 101", got)
	}
}

// TestTLSReloadOnSIGHUP: the rdsbackup process reloads its certificate on
// a real SIGHUP (main wires the signal), and keeps serving.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	ca.issue(t, certFile, keyFile, 200)
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndataDir: %s\naccountId: \"1234567890\"\nbackups:\n  schedule: false\ntls:\n  certFile: %s\n  keyFile: %s\n",
		t.TempDir(), certFile, keyFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startServeProcess(t, buildRdsbackup(t), cfgPath, nil)
	if got := servedSerial(t, proc.addr, ca.pool); got != 200 {
		t.Fatalf("serial %d at start", got)
	}
	ca.issue(t, certFile, keyFile, 201)
	if err := proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial(t, proc.addr, ca.pool) != 201 {
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate is not served after SIGHUP:\n%s", proc.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-proc.done:
		t.Fatalf("the service exited on SIGHUP:\n%s", proc.stderr.String())
	default:
	}
}
