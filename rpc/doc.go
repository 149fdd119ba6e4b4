// Package rpc is the server side of the Alibaba Cloud RPC protocol as used by
// RDS (2014-08-15) and RAM (2015-05-01): it parses calls, verifies signature
// V2 (HMAC-SHA1 over the parameters) and V3 (ACS3-HMAC-SHA256 Authorization
// header), guards against replay, and writes JSON or XML responses and error
// bodies that the official SDKs accept.
package rpc
