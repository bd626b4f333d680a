// Package credentials stands in for egoscale's, which the module proxy does not serve.
package credentials

// Credentials is an API key pair.
type Credentials struct{ key, secret string }

// NewStaticCredentials returns credentials from a key pair.
func NewStaticCredentials(key, secret string) *Credentials { return &Credentials{key, secret} }
