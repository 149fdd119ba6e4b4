package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// TLSConfig turns on HTTPS for the API and the download links.
type TLSConfig struct {
	// CertFile is a PEM certificate chain, the server's first; KeyFile its
	// PEM private key. Both, or neither.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Enabled reports whether HTTPS is configured.
func (t *TLSConfig) Enabled() bool { return t.CertFile != "" }

func (t *TLSConfig) validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("config: tls: set both certFile and keyFile, or neither")
	}
	return nil
}

// certReloader holds the served certificate and replaces it on reload, so
// that a renewed certificate is taken without a restart; a reload that
// fails keeps the one in use.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu   sync.RWMutex
	cert *tls.Certificate
}

func newCertReloader(cfg TLSConfig, logger *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: cfg.CertFile, keyFile: cfg.KeyFile, logger: logger}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) reload() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load certFile %s and keyFile %s: %w", r.certFile, r.keyFile, err)
	}
	r.mu.Lock()
	r.cert = &cert
	r.mu.Unlock()
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert, nil
}

// serverConfig is the listener's TLS configuration.
func (r *certReloader) serverConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
}

// watch reloads the certificate at every signal on hangup until ctx ends.
func (r *certReloader) watch(ctx context.Context, hangup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hangup:
			if err := r.reload(); err != nil {
				r.logger.Error("TLS certificate not reloaded; still serving the previous one", "err", err)
			} else {
				r.logger.Info("TLS certificate reloaded", "certFile", r.certFile)
			}
		}
	}
}
