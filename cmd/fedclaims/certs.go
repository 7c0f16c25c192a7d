package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/certs"
)

// newCertsCmd groups the consortium PKI commands.
func newCertsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Consortium PKI: CA, aggregator, site and admin certificates",
	}
	cmd.AddCommand(newCertsInitCmd(a), newCertsIssueCmd(a), newCertsRevokeCmd(a))
	return cmd
}

func newCertsInitCmd(a *app) *cobra.Command {
	var (
		out, consortium, admin string
		sites, serverNames     []string
		days                   int
	)
	cmd := &cobra.Command{
		Use:   "init --out DIR --sites a,b,c",
		Short: "Create a consortium CA and the aggregator, admin and site certificates",
		Long: `Create a consortium directory: ca.crt and ca.key, aggregator.crt/.key (a TLS
server certificate for --server-names), admin.crt/.key, and sites/<id>.crt/.key for
each site. Keys are written 0600. Keep ca.key offline once the sites are issued.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("certs init: flag --out is required")
			}
			if days <= 0 {
				return fmt.Errorf("certs init: flag --days: %d is not positive", days)
			}
			err := certs.Init(out, certs.Options{
				Consortium:  consortium,
				Sites:       sites,
				ServerNames: serverNames,
				Admin:       admin,
				Validity:    time.Duration(days) * 24 * time.Hour,
			})
			if err != nil {
				return err
			}
			files := []certs.Files{certs.AggregatorFiles(out), certs.AdminFiles(out)}
			for _, s := range sites {
				files = append(files, certs.SiteFiles(out, s))
			}
			if _, err := fmt.Fprintf(a.stdout, "%s\tconsortium CA\n", filepath.Join(out, "ca.crt")); err != nil {
				return err
			}
			for _, f := range files {
				if err := printCert(a, f.Cert); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to create the consortium in")
	cmd.Flags().StringSliceVar(&sites, "sites", nil, "site ids, comma-separated")
	cmd.Flags().StringSliceVar(&serverNames, "server-names", nil, "the aggregator's DNS names and IPs (default localhost,127.0.0.1,::1)")
	cmd.Flags().StringVar(&consortium, "consortium", "fedclaims", "consortium name, in every certificate's organization")
	cmd.Flags().StringVar(&admin, "admin", "admin", "id of the admin certificate")
	cmd.Flags().IntVar(&days, "days", int(certs.DefaultLeafValidity/(24*time.Hour)), "validity of the issued certificates in days")
	return cmd
}

func newCertsIssueCmd(a *app) *cobra.Command {
	var (
		caDir, site, out string
		days             int
	)
	cmd := &cobra.Command{
		Use:   "issue --ca DIR --site ID --out DIR",
		Short: "Issue a certificate for a site that joins later",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caDir == "" || site == "" {
				return errors.New("certs issue: flags --ca and --site are required")
			}
			if out == "" {
				out = caDir
			}
			if days <= 0 {
				return fmt.Errorf("certs issue: flag --days: %d is not positive", days)
			}
			if _, err := certs.IssueSite(caDir, out, site, time.Duration(days)*24*time.Hour); err != nil {
				return err
			}
			return printCert(a, certs.SiteFiles(out, site).Cert)
		},
	}
	cmd.Flags().StringVar(&caDir, "ca", "", "consortium directory holding ca.crt and ca.key")
	cmd.Flags().StringVar(&site, "site", "", "id of the new site")
	cmd.Flags().StringVar(&out, "out", "", "directory to write ca.crt and sites/<id>.crt/.key to (default: --ca)")
	cmd.Flags().IntVar(&days, "days", int(certs.DefaultLeafValidity/(24*time.Hour)), "validity in days")
	return cmd
}

func newCertsRevokeCmd(a *app) *cobra.Command {
	var caDir, site, certFile string
	cmd := &cobra.Command{
		Use:   "revoke --ca DIR (--site ID | --cert FILE)",
		Short: "Add a certificate to the consortium's revocation list (DIR/crl.pem)",
		Long: `Add a certificate to DIR/crl.pem, signed by the CA. Distribute crl.pem to the
aggregator: it rereads the list on every new connection.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caDir == "" || (site == "") == (certFile == "") {
				return errors.New("certs revoke: flag --ca and exactly one of --site and --cert are required")
			}
			if site != "" {
				certFile = certs.SiteFiles(caDir, site).Cert
			}
			if err := certs.Revoke(caDir, certFile); err != nil {
				return err
			}
			_, err := fmt.Fprintf(a.stdout, "%s\trevoked in %s\n", certFile, filepath.Join(caDir, "crl.pem"))
			return err
		},
	}
	cmd.Flags().StringVar(&caDir, "ca", "", "consortium directory holding ca.crt and ca.key")
	cmd.Flags().StringVar(&site, "site", "", "site id whose certificate in DIR/sites/ to revoke")
	cmd.Flags().StringVar(&certFile, "cert", "", "certificate file to revoke")
	return cmd
}

func printCert(a *app, file string) error {
	c, err := certs.LoadCert(file)
	if err != nil {
		return err
	}
	id, err := certs.IdentityOf(c)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	_, err = fmt.Fprintf(a.stdout, "%s\t%s\texpires %s\n", file, id, c.NotAfter.UTC().Format(time.RFC3339))
	return err
}
