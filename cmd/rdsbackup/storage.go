package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
	"github.com/rdsbackup/rdsbackup/storage/s3"
)

// Storage types.
const (
	StorageLocalFS = "localfs"
	StorageS3      = "s3"
)

// Download modes.
const (
	DownloadsProxy     = "proxy"
	DownloadsPresigned = "presigned"
)

// StorageConfig chooses where backup objects live: files under
// dataDir/storage (localfs, the default) or an S3-compatible bucket.
type StorageConfig struct {
	Type            string `yaml:"type"`
	Endpoint        string `yaml:"endpoint"`
	Region          string `yaml:"region"`
	Bucket          string `yaml:"bucket"`
	Prefix          string `yaml:"prefix"`
	AccessKeyID     string `yaml:"accessKeyId"`
	SecretAccessKey string `yaml:"secretAccessKey"`
	// Secure is https (default true).
	Secure            *bool    `yaml:"secure"`
	PathStyle         string   `yaml:"pathStyle"`
	PartSize          ByteSize `yaml:"partSize"`
	UploadConcurrency int      `yaml:"uploadConcurrency"`
	// RequestTimeout bounds each request to the bucket (default 5m).
	RequestTimeout Duration `yaml:"requestTimeout"`
}

// s3Config is the section as the s3 package takes it.
func (c *StorageConfig) s3Config() s3.Config {
	return s3.Config{
		Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket, Prefix: c.Prefix,
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
		Secure: c.Secure == nil || *c.Secure, PathStyle: c.PathStyle,
		PartSize: int64(c.PartSize), UploadConcurrency: c.UploadConcurrency,
		RequestTimeout: time.Duration(c.RequestTimeout),
	}
}

func (c *StorageConfig) validate() error {
	switch c.Type {
	case "":
		c.Type = StorageLocalFS
		fallthrough
	case StorageLocalFS:
		for key, set := range map[string]bool{
			"endpoint": c.Endpoint != "", "region": c.Region != "", "bucket": c.Bucket != "", "prefix": c.Prefix != "",
			"accessKeyId": c.AccessKeyID != "", "secretAccessKey": c.SecretAccessKey != "", "secure": c.Secure != nil,
			"pathStyle": c.PathStyle != "", "partSize": c.PartSize != 0, "uploadConcurrency": c.UploadConcurrency != 0,
			"requestTimeout": c.RequestTimeout != 0,
		} {
			if set {
				return fmt.Errorf("config: storage.%s is for type s3; localfs keeps objects in dataDir/storage", key)
			}
		}
	case StorageS3:
		sc := c.s3Config()
		if err := sc.Validate(); err != nil {
			return fmt.Errorf("config: storage.%v", err)
		}
		// The defaults, written back so the running config shows them.
		c.PathStyle, c.PartSize, c.UploadConcurrency, c.RequestTimeout = sc.PathStyle, ByteSize(sc.PartSize), sc.UploadConcurrency, Duration(sc.RequestTimeout)
	default:
		return fmt.Errorf("config: storage.type %q: use localfs or s3", c.Type)
	}
	return nil
}

// ByteSize is a size written as 16MiB, 5GiB, 512KiB or a number of bytes.
type ByteSize int64

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a size such as 16MiB or 5GiB", n.Line, n.Value)
	}
	*b = ByteSize(v)
	return nil
}

func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("bad size")
	}
	return v * mult, nil
}

// backupStorage is the object store the config names, and what the
// commands need of it beyond the port. Wrap Store (encryption, metrics)
// and the rest keeps working: they act on the bucket or directory itself.
type backupStorage struct {
	Store rdsbackup.ObjectStore
	// Describe says where the objects are, for logs and messages.
	Describe string
	// Clean removes what writers killed before Commit left: temp files,
	// incomplete multipart uploads. Run it only when no write is running.
	Clean func(ctx context.Context) error
	// AbortUploads, for s3, aborts the incomplete uploads under a prefix
	// (those of one job), leaving other nodes' uploads alone.
	AbortUploads func(ctx context.Context, prefix string) (int, error)
	// Healthy reports whether the store answers (nil: a local directory
	// always does, or fails each operation on its own).
	Healthy func(ctx context.Context) error
	// Presign, for s3, returns a URL that GETs an object until expires.
	Presign func(ctx context.Context, key string, expires time.Time, filename string) (string, error)
}

// openStore builds the configured store and checks once that it can be
// used: for s3, that the bucket exists and the credentials may list it.
// The databases are not needed to start; the store is.
func openStore(ctx context.Context, cfg *Config, logger *slog.Logger) (*backupStorage, error) {
	switch cfg.Storage.Type {
	case StorageS3:
		st, err := s3.New(cfg.Storage.s3Config(), logger)
		if err != nil {
			return nil, fmt.Errorf("config: storage.%v", err)
		}
		if err := st.Check(ctx); err != nil {
			return nil, fmt.Errorf("backup storage: %w", err)
		}
		return &backupStorage{
			Store:    st,
			Describe: fmt.Sprintf("s3 bucket %s at %s, prefix %q", cfg.Storage.Bucket, cfg.Storage.Endpoint, cfg.Storage.Prefix),
			Clean: func(ctx context.Context) error {
				n, err := st.CleanUploads(ctx)
				if n > 0 {
					logger.Info("aborted incomplete uploads that a stopped service left", "count", n)
				}
				return err
			},
			AbortUploads: st.AbortUploadsUnder,
			Healthy:      st.Healthy,
			Presign: func(ctx context.Context, key string, expires time.Time, filename string) (string, error) {
				return st.PresignGet(ctx, key, time.Until(expires), filename)
			},
		}, nil
	default:
		fs := localfs.New(cfg.Path("storage"))
		return &backupStorage{Store: fs, Describe: "localfs " + fs.Root, Clean: fs.CleanTemp}, nil
	}
}
