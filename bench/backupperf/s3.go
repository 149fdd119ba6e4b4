package main

import (
	"context"
	"fmt"
	"log"

	"github.com/minio/minio-go/v7"

	"github.com/rdsbackup/rdsbackup/internal/s3test"
)

// s3SecretEnv carries the MinIO secret to the services' configs.
const s3SecretEnv = "BACKUPPERF_S3_SECRET"

// minioSecret is the secret of the MinIO server of this run ("" without -s3).
var minioSecret string

// startMinIO starts a MinIO server with its data under dir and a bucket,
// and returns the storage section that points a service at it.
func startMinIO(ctx context.Context, dir string) (stop func(), storage string, err error) {
	bin, err := s3test.Binary()
	if err != nil {
		return nil, "", err
	}
	if err := mkdirs(dir); err != nil {
		return nil, "", err
	}
	srv, err := s3test.Start(bin, dir)
	if err != nil {
		return nil, "", err
	}
	if err := srv.Client().MakeBucket(ctx, "bench", minio.MakeBucketOptions{Region: s3test.Region}); err != nil {
		srv.Remove()
		return nil, "", err
	}
	log.Printf("minio serving on %s, data in %s", srv.Endpoint, srv.Dir)
	minioSecret = srv.SecretKey
	storage = fmt.Sprintf("storage:\n  type: s3\n  endpoint: %s\n  region: %s\n  bucket: bench\n  prefix: rdsbackup/\n"+
		"  accessKeyId: %s\n  secretAccessKey: ${%s}\n  secure: false\n  pathStyle: path\n", srv.Endpoint, s3test.Region, srv.AccessKey, s3SecretEnv)
	return srv.Remove, storage, nil
}
