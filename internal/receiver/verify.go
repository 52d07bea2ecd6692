package receiver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
)

// ChannelTokenVerifier decides whether a CRM notification's token is valid
// for its channel, which Zoho connection the channel belongs to ("" for the
// receiver's default) and which CRM module it watches ("" when the verifier
// does not know: any module is accepted). The static list below serves
// fixed configuration; the worker's channel manager provides one backed by
// NATS KV that knows each channel's module.
type ChannelTokenVerifier interface {
	VerifyChannelToken(ctx context.Context, channelID, token string) (connection, module string, ok bool)
}

// StaticTokens accepts any of a fixed set of tokens, whatever the channel, so
// an operator can rotate by listing the old and the new token for a while.
type StaticTokens struct {
	sums   [][32]byte
	conns  []string
	tokens []string // plaintext, only so that no stored event carries one (Secrets)
}

var _ ChannelTokenVerifier = (*StaticTokens)(nil)

// NewStaticTokens returns a verifier for tokens of the default connection;
// empty strings are ignored.
func NewStaticTokens(tokens []string) *StaticTokens {
	s := &StaticTokens{}
	s.Add("", tokens...)
	return s
}

// Add accepts tokens for a named connection.
func (s *StaticTokens) Add(connection string, tokens ...string) {
	for _, t := range tokens {
		if t != "" {
			s.sums = append(s.sums, sha256.Sum256([]byte(t)))
			s.conns = append(s.conns, connection)
			s.tokens = append(s.tokens, t)
		}
	}
}

// Secrets returns the configured tokens: the receiver refuses to store a
// body that carries one outside its token field.
func (s *StaticTokens) Secrets() []string { return append([]string(nil), s.tokens...) }

// Len reports how many tokens are configured.
func (s *StaticTokens) Len() int { return len(s.sums) }

// VerifyChannelToken compares hashes in constant time, so neither the
// token's content nor its length leaks through timing; every configured
// token is compared even after a match.
func (s *StaticTokens) VerifyChannelToken(_ context.Context, _ string, token string) (string, string, bool) {
	if token == "" {
		return "", "", false
	}
	got := sha256.Sum256([]byte(token))
	match := -1
	for i := range s.sums {
		if subtle.ConstantTimeCompare(got[:], s.sums[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", "", false
	}
	return s.conns[match], "", true
}
