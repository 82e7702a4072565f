// Package tokenstore keeps the cluster's bearer tokens in etcd, so that
// every kernel of a cluster authenticates with the same tokens and sees a
// creation or a revocation within a second.
//
// A token is stored as its SHA-256 digest, never as its secret: under
// <prefix>tokens/<hex digest> a pb.TokenInfo (name, role, created,
// expires, created_by; the id is the first 12 hex digits of the digest).
// Keys under <prefix>tokens/ that start with "." are bookkeeping: the
// cluster's bootstrap marker and the agent names AgentJoin handed out.
//
// Store creates, lists and revokes tokens, mints agent tokens for join
// tokens (Join) and bootstraps a new cluster once (Bootstrap). Registry
// is the read side every kernel process runs: it loads the tokens and
// watches them, and answers Lookup from memory on every call.
//
// It is not the tokens file (internal/api.Tokens), which stays supported
// as static tokens served alongside these, nor the door that checks roles
// (internal/api).
package tokenstore
