package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
)

// newAuditCmd groups the audit-log commands.
func newAuditCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Hash-chained audit logs",
	}
	cmd.AddCommand(newAuditVerifyCmd(a))
	return cmd
}

func newAuditVerifyCmd(a *app) *cobra.Command {
	var certFile, head string
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify an audit log's hash chain; exit non-zero naming the first bad entry",
		Long: `Verify an audit log: every line must be a canonical entry whose hash is right,
whose seq follows the previous one, whose prev is the previous entry's hash and whose
time does not go backwards. With --cert, every entry must also carry a valid signature
by that certificate's key. Entries removed from the end leave a valid chain; pass the
last hash recorded elsewhere as --head to catch that too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			var v audit.Verifier
			if certFile != "" {
				c, err := certs.LoadCert(certFile)
				if err != nil {
					return fmt.Errorf("flag --cert: %w", err)
				}
				v.PublicKey = c.PublicKey
			}
			v.Head = head
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			s, err := v.Verify(f)
			if err != nil {
				return fmt.Errorf("audit log %s: %w", file, err)
			}
			last := "never"
			if s.Entries > 0 {
				last = s.Last.Format(time.RFC3339Nano)
			}
			_, err = fmt.Fprintf(a.stdout, "%s: intact, %d entries, last %s, head %s\n", file, s.Entries, last, s.Head)
			return err
		},
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "certificate whose key must have signed every entry")
	cmd.Flags().StringVar(&head, "head", "", "hash the last entry must carry")
	return cmd
}
