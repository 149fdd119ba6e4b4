// Package ram parses, validates and evaluates RAM policy documents, the
// authorization language of Alibaba Cloud RAM (spec §4).
//
// Choices the RAM documentation leaves open, made here once:
//
//   - Action matching is case-insensitive (ASCII): "rds:describebackups"
//     matches "rds:DescribeBackups". Clients and policies in the wild spell
//     API names inconsistently, and AWS IAM behaves the same way.
//   - Resource matching is case-sensitive: ARNs embed instance IDs and other
//     names whose case is significant.
//   - StringLike/StringNotLike are case-sensitive, like StringEquals.
//   - A condition key absent from the request makes every positive operator
//     false and every negated operator (StringNot*, NumericNotEquals,
//     DateNotEquals, NotIpAddress) true: a negated operator is exactly the
//     negation of its positive form, as in AWS IAM. This keeps the common
//     guard "Deny ... NotIpAddress acs:SourceIp" failing closed when the
//     source address is unknown.
//   - Condition key names are case-insensitive; condition values and all
//     element, operator and predefined names ("Allow", "true") are not.
//
// A *Document is immutable after ParseDocument and safe for concurrent use;
// all patterns and condition values are compiled at parse time so that
// Evaluate, which runs on every API call by a RAM user, neither parses nor
// allocates (except when a String* operator is applied to acs:SourceIp or
// acs:CurrentTime, which must then be formatted).
package ram
