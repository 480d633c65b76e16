package agent

import (
	"strings"
	"testing"
)

// TestConfig_ValidateAPITLS: the remote API's settings must come
// together, and each missing piece is named.
func TestConfig_ValidateAPITLS(t *testing.T) {
	tests := []struct {
		name                 string
		addr, cert, key, ca  string
		wantErr, wantNoError []string
	}{
		{name: "Off"},
		{name: "Complete", addr: "192.0.2.1:7947", cert: "c.pem", key: "k.pem", ca: "ca.pem"},
		{name: "EveryAddress", addr: ":7947", cert: "c.pem", key: "k.pem", ca: "ca.pem"},
		{name: "NoCA", addr: "192.0.2.1:7947", cert: "c.pem", key: "k.pem",
			wantErr: []string{"needs --api-tls-client-ca FILE"}, wantNoError: []string{"--api-tls-cert FILE"}},
		{name: "NoCertNoKey", addr: "192.0.2.1:7947", ca: "ca.pem",
			wantErr: []string{"needs --api-tls-cert FILE and --api-tls-key FILE"}, wantNoError: []string{"client-ca"}},
		{name: "NoKey", addr: "192.0.2.1:7947", cert: "c.pem", ca: "ca.pem", wantErr: []string{"--api-tls-key FILE"}},
		{name: "Nothing", addr: "192.0.2.1:7947", wantErr: []string{"--api-tls-cert FILE", "--api-tls-client-ca FILE"}},
		{name: "NoPort", addr: "192.0.2.1", cert: "c.pem", key: "k.pem", ca: "ca.pem", wantErr: []string{`api-tls-addr "192.0.2.1": want HOST:PORT`}},
		{name: "BadPort", addr: "192.0.2.1:http", cert: "c.pem", key: "k.pem", ca: "ca.pem", wantErr: []string{"want HOST:PORT"}},
		{name: "FilesWithoutAddr", cert: "c.pem", ca: "ca.pem",
			wantErr: []string{"api-tls-cert c.pem: needs --api-tls-addr", "api-tls-client-ca ca.pem: needs --api-tls-addr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Name = "n1"
			c.APITLSAddr, c.APITLSCert, c.APITLSKey, c.APITLSClientCA = tt.addr, tt.cert, tt.key, tt.ca
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, w := range tt.wantNoError {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q complains about %q, which is set", err, w)
				}
			}
		})
	}
}
