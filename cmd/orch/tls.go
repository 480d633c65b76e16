package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/internal/pki"
)

// Files `orch tls ca create` writes, and `orch tls cert create` reads by
// default, in the current directory.
const (
	caCertFile = "orch-ca.pem"
	caKeyFile  = "orch-ca-key.pem"
)

const day = 24 * time.Hour

// certNameRE is what --name may be: it becomes file names, so no path
// separators and no leading dot.
var certNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// dnsNameRE is a DNS name for a server certificate, optionally a wildcard.
var dnsNameRE = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

func newTLSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Make a CA and certificates for the agents' TLS API",
		Long: `Make the files the remote API needs, like "nomad tls": a certificate
authority, a server certificate per agent (orch agent --api-tls-addr
HOST:PORT --api-tls-cert NODE.pem --api-tls-key NODE-key.pem
--api-tls-client-ca orch-ca.pem) and a client certificate per user
(orch --host https://HOST:PORT --tls-ca orch-ca.pem --tls-cert USER.pem
--tls-key USER-key.pem ...). Keys are ECDSA P-256, written 0600; no file
is ever overwritten. Any client certificate the CA signs may do everything
root can on an agent's socket: keep orch-ca-key.pem off the nodes.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("tls needs a subcommand")}
		},
	}
	ca := &cobra.Command{
		Use:   "ca",
		Short: "Make the certificate authority that signs agents' and users' certificates",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("tls ca needs a subcommand")}
		},
	}
	ca.AddCommand(newTLSCACreateCmd(g))
	cert := &cobra.Command{
		Use:   "cert",
		Short: "Make server and client certificates signed by the CA",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("tls cert needs a subcommand")}
		},
	}
	cert.AddCommand(newTLSCertCreateCmd(g))
	cmd.AddCommand(ca, cert)
	return cmd
}

func newTLSCACreateCmd(g *globals) *cobra.Command {
	var (
		dir, name string
		days      int
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Make a CA: " + caCertFile + " and " + caKeyFile,
		Long: `Make a certificate authority: a self-signed ECDSA P-256 certificate
(` + caCertFile + `, what agents' --api-tls-client-ca and clients' --tls-ca
name) and its key (` + caKeyFile + `, mode 0600, needed only to make
certificates). Refuses to overwrite either file.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days <= 0 {
				return usageError{fmt.Errorf("--days %d: want a positive number of days", days)}
			}
			if name == "" {
				return usageError{errors.New("--name: must not be empty")}
			}
			ca, err := pki.NewCA(name, time.Duration(days)*day)
			if err != nil {
				return err
			}
			certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
			if err := writeCert(dir, certPath, keyPath, ca); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s and %s (the CA %q, valid until %s, sha256 %s)\n",
				certPath, keyPath, name, ca.Cert.NotAfter.UTC().Format(time.DateOnly), pki.Fingerprint(ca.Cert))
			fmt.Fprintf(g.stdout, "keep %s safe: whoever holds it can make certificates every agent trusts\n", keyPath)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", ".", "directory to write the files in (created 0700 if missing)")
	fl.StringVar(&name, "name", "orch CA", "the CA's name (its certificate's common name)")
	fl.IntVar(&days, "days", int(pki.DefaultCAValidity/day), "days the CA is valid")
	return cmd
}

func newTLSCertCreateCmd(g *globals) *cobra.Command {
	var (
		caFile, caKey, name, dir string
		server, client           bool
		ips, dnsNames            []string
		days                     int
	)
	cmd := &cobra.Command{
		Use:   "create (--server|--client) --name NAME",
		Short: "Make a certificate and key signed by the CA: NAME.pem and NAME-key.pem",
		Long: `Make an ECDSA P-256 key and a certificate for it, signed by the CA
(--ca, --ca-key), written as NAME.pem and NAME-key.pem (mode 0600).

--server makes an agent's certificate, for --api-tls-cert: clients check
the address they dial against its --ip and --dns names, so give every
address and name clients will use (at least one). --client makes a user's
certificate, for --tls-cert: agents record its name (caller cn=NAME in the
api call events). Refuses to overwrite either file.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := certRequest(server, client, name, ips, dnsNames, days)
			if err != nil {
				return usageError{err}
			}
			ca, err := pki.LoadCA(caFile, caKey)
			if err != nil {
				return fmt.Errorf("load the CA: %w", err)
			}
			c, err := ca.Issue(req)
			if err != nil {
				return err
			}
			certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
			if err := writeCert(dir, certPath, keyPath, c); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s and %s (%s certificate %q, valid until %s, sha256 %s)\n",
				certPath, keyPath, req.Usage, name, c.Cert.NotAfter.UTC().Format(time.DateOnly), pki.Fingerprint(c.Cert))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&caFile, "ca", caCertFile, "PEM file of the CA certificate")
	fl.StringVar(&caKey, "ca-key", caKeyFile, "PEM file of the CA's private key")
	fl.BoolVar(&server, "server", false, "make an agent's certificate (for --api-tls-cert)")
	fl.BoolVar(&client, "client", false, "make a user's certificate (for --tls-cert)")
	fl.StringVar(&name, "name", "", "common name: the node for --server, the user for --client; also the files' name (required)")
	fl.StringArrayVar(&ips, "ip", nil, "IP address clients dial the agent at (--server; repeatable)")
	fl.StringArrayVar(&dnsNames, "dns", nil, "DNS name clients dial the agent by (--server; repeatable)")
	fl.IntVar(&days, "days", int(pki.DefaultCertValidity/day), "days the certificate is valid (at most until the CA expires)")
	fl.StringVar(&dir, "dir", ".", "directory to write the files in (created 0700 if missing)")
	return cmd
}

// certRequest checks cert create's flags and reports every problem at once.
func certRequest(server, client bool, name string, ips, dnsNames []string, days int) (pki.Request, error) {
	var errs []error
	req := pki.Request{Name: name, DNSNames: dnsNames, Validity: time.Duration(days) * day}
	switch {
	case server && client:
		errs = append(errs, errors.New("give --server or --client, not both"))
	case server:
		req.Usage = pki.Server
		if len(ips) == 0 && len(dnsNames) == 0 {
			errs = append(errs, errors.New("--server needs at least one --ip or --dns: clients check the address they dial against them"))
		}
	case client:
		req.Usage = pki.Client
		if len(ips) > 0 || len(dnsNames) > 0 {
			errs = append(errs, errors.New("--ip and --dns are for --server certificates; a client is known by its --name"))
		}
	default:
		errs = append(errs, errors.New("give --server (an agent's certificate) or --client (a user's)"))
	}
	if !certNameRE.MatchString(name) {
		errs = append(errs, fmt.Errorf("--name %q: want 1-64 letters, digits, '.', '_', '@', '-', starting with a letter or digit (it names the files too)", name))
	}
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--ip %q: want an IP address", s))
			continue
		}
		req.IPs = append(req.IPs, a)
	}
	for _, d := range dnsNames {
		if len(d) > 253 || !dnsNameRE.MatchString(d) {
			errs = append(errs, fmt.Errorf("--dns %q: want a DNS name", d))
		}
	}
	if days <= 0 {
		errs = append(errs, fmt.Errorf("--days %d: want a positive number of days", days))
	}
	return req, errors.Join(errs...)
}

// writeCert writes a certificate and its key into dir, creating dir (0700:
// it holds keys) if it is missing.
func writeCert(dir, certPath, keyPath string, c *pki.Cert) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	err := pki.WriteNew(certPath, keyPath, c)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w (refusing to overwrite: remove it first, or write elsewhere with --dir)", err)
	}
	return err
}
