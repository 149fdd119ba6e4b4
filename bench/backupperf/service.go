package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rdsbackup/rdsbackup/rpc"
)

// buildRdsbackup builds cmd/rdsbackup of the module in repo into dir.
func buildRdsbackup(ctx context.Context, repo, dir string) (string, error) {
	bin := filepath.Join(dir, "rdsbackup")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rdsbackup")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/rdsbackup: %v\n%s", err, out)
	}
	return bin, nil
}

// service is a running `rdsbackup serve` with one registered instance.
type service struct {
	label      string // "" for the binary built from -repo, else the -alt name
	bin        string
	dir        string // its data directory and config
	addr       string
	instanceID string
	ak, secret string
	cmd        *exec.Cmd
	env        []string // serve's, for rdsbackup verify with the same config
	done       chan struct{}
	http       *http.Client
}

// passwordEnv is the variable through which the config gets the password.
const passwordEnv = "BACKUPPERF_DB_PASSWORD"

// startService writes a config registering src and starts the service.
func startService(ctx context.Context, label, bin, dir string, src *dbServer, extraConfig string) (*service, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &service{label: label, bin: bin, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port),
		ak: "LTAIbench" + rand.Text()[:12], secret: rand.Text(), http: &http.Client{Timeout: time.Minute}}
	engine := "MariaDB"
	s.instanceID = "rm-bench"
	if src.engine == engPostgres {
		engine, s.instanceID = "PostgreSQL", "pg-bench"
	}
	cfg := fmt.Sprintf(`listen: %s
dataDir: %s
instances:
  - id: %s
    engine: %s
    dsn: "%s"
backups:
  schedule: false
drills:
  dir: %s
%s`, s.addr, filepath.Join(dir, "data"), s.instanceID, engine, src.rdsbackupDSN(passwordEnv), filepath.Join(filepath.Dir(filepath.Dir(dir)), "dr-"+filepath.Base(dir)[:2]), extraConfig)
	cfgPath := filepath.Join(dir, "rdsbackup.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "serve.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(),
		passwordEnv+"="+src.password,
		"RDSBACKUP_ACCESS_KEY_ID="+s.ak,
		"RDSBACKUP_ACCESS_KEY_SECRET="+s.secret,
		s3SecretEnv+"="+minioSecret,
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.env = cmd.Env
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := s.http.Get("http://" + s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			return nil, fmt.Errorf("rdsbackup serve exited at start:\n%s", tail(string(b), 3000))
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("rdsbackup serve did not answer /healthz within a minute")
		}
	}
}

func (s *service) pid() int { return s.cmd.Process.Pid }

func (s *service) stop() {
	if s == nil || s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// call makes a V2-signed RPC call and decodes the JSON answer into out.
func (s *service) call(ctx context.Context, action string, params map[string]string, out any) error {
	p := url.Values{
		"Action":           {action},
		"Format":           {"JSON"},
		"Version":          {"2014-08-15"},
		"AccessKeyId":      {s.ak},
		"SignatureMethod":  {"HMAC-SHA1"},
		"SignatureVersion": {"1.0"},
		"SignatureNonce":   {rand.Text()},
		"Timestamp":        {time.Now().UTC().Format("2006-01-02T15:04:05Z")},
	}
	for k, v := range params {
		p.Set(k, v)
	}
	p.Set("Signature", rpc.SignV2(s.secret, rpc.StringToSignV2(http.MethodPost, p)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr+"/", strings.NewReader(p.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", action, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: decode %q: %w", action, body, err)
	}
	return nil
}

// backupOutcome is what the API says of a finished backup.
type backupOutcome struct {
	JobID       string
	Wall        time.Duration // CreateBackup sent → DescribeBackupTasks says Finished
	APIDuration time.Duration // BackupEndTime - BackupStartTime (second resolution)
	Size        int64
	DownloadURL string
}

// backup takes a Logical backup through the API and polls every poll until
// it has finished.
func (s *service) backup(ctx context.Context, poll time.Duration) (*backupOutcome, error) {
	start := time.Now()
	var created struct{ BackupJobId string }
	if err := s.call(ctx, "CreateBackup", map[string]string{"DBInstanceId": s.instanceID, "BackupMethod": "Logical"}, &created); err != nil {
		return nil, err
	}
	out := &backupOutcome{JobID: created.BackupJobId}
	for {
		var tasks struct {
			Items struct {
				BackupJob []struct {
					BackupJobId, BackupId, BackupStatus, FailureReason string
				}
			}
		}
		if err := s.call(ctx, "DescribeBackupTasks", map[string]string{"DBInstanceId": s.instanceID, "BackupJobId": out.JobID}, &tasks); err != nil {
			return nil, err
		}
		if len(tasks.Items.BackupJob) != 1 {
			return nil, fmt.Errorf("DescribeBackupTasks returned %d jobs for job %s", len(tasks.Items.BackupJob), out.JobID)
		}
		j := tasks.Items.BackupJob[0]
		if j.BackupStatus == "Finished" {
			out.Wall = time.Since(start)
			break
		}
		if j.BackupStatus == "Failed" {
			return nil, fmt.Errorf("backup job %s failed: %s", out.JobID, j.FailureReason)
		}
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var backups struct {
		Items struct {
			Backup []struct {
				BackupId, BackupStatus, BackupStartTime, BackupEndTime, BackupDownloadURL string
				BackupSize                                                                int64
			}
		}
	}
	if err := s.call(ctx, "DescribeBackups", map[string]string{"DBInstanceId": s.instanceID, "BackupId": out.JobID}, &backups); err != nil {
		return nil, err
	}
	if len(backups.Items.Backup) != 1 {
		return nil, fmt.Errorf("DescribeBackups returned %d sets for BackupId %s", len(backups.Items.Backup), out.JobID)
	}
	b := backups.Items.Backup[0]
	if b.BackupStatus != "Success" {
		return nil, fmt.Errorf("backup %s is %s", out.JobID, b.BackupStatus)
	}
	out.Size, out.DownloadURL = b.BackupSize, b.BackupDownloadURL
	t0, err0 := time.Parse("2006-01-02T15:04:05Z", b.BackupStartTime)
	t1, err1 := time.Parse("2006-01-02T15:04:05Z", b.BackupEndTime)
	if err0 == nil && err1 == nil {
		out.APIDuration = t1.Sub(t0)
	}
	return out, nil
}
