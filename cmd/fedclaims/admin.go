package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
)

// adminFlags are what every admin subcommand needs to reach the aggregator.
type adminFlags struct {
	addr, certsDir, serverName, federation, reason string
}

// newAdminCmd groups the coordinator's commands, which call the aggregator's Admin
// service over mutual TLS with the admin certificate and print its answer as JSON.
func newAdminCmd(a *app) *cobra.Command {
	var o adminFlags
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Coordinator's tools: status, sites, start, pause, resume, stop",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.addr, "addr", "127.0.0.1:7443", "the aggregator's gRPC address")
	pf.StringVar(&o.certsDir, "certs", "", "consortium directory holding ca.crt and admin.crt/.key")
	pf.StringVar(&o.serverName, "server-name", "", "name the aggregator's certificate must carry (default: the host of --addr)")
	pf.StringVar(&o.federation, "federation", "", "federation id")
	for _, c := range []struct {
		use, short string
		call       func(context.Context, fedclaimspb.AdminClient, *fedclaimspb.Envelope, string) (proto.Message, error)
	}{
		{"status", "The federation's state, round, sites and per-round metrics", func(ctx context.Context, c fedclaimspb.AdminClient, env *fedclaimspb.Envelope, _ string) (proto.Message, error) {
			return c.Status(ctx, &fedclaimspb.StatusRequest{Envelope: env})
		}},
		{"sites", "Each site: enrolled, online, last seen, last contribution", func(ctx context.Context, c fedclaimspb.AdminClient, env *fedclaimspb.Envelope, _ string) (proto.Message, error) {
			return c.Sites(ctx, &fedclaimspb.SitesRequest{Envelope: env})
		}},
		{"start", "Begin key setup once every site enrolled, or the first round after the vocabulary", func(ctx context.Context, c fedclaimspb.AdminClient, env *fedclaimspb.Envelope, why string) (proto.Message, error) {
			return c.Start(ctx, &fedclaimspb.ControlRequest{Envelope: env, Reason: why})
		}},
		{"pause", "Let the current round finish and hold the next", func(ctx context.Context, c fedclaimspb.AdminClient, env *fedclaimspb.Envelope, why string) (proto.Message, error) {
			return c.Pause(ctx, &fedclaimspb.ControlRequest{Envelope: env, Reason: why})
		}},
		{"resume", "Lift a pause", func(ctx context.Context, c fedclaimspb.AdminClient, env *fedclaimspb.Envelope, why string) (proto.Message, error) {
			return c.Resume(ctx, &fedclaimspb.ControlRequest{Envelope: env, Reason: why})
		}},
		{"stop", "End the federation after the current round; it cannot be resumed", func(ctx context.Context, c fedclaimspb.AdminClient, env *fedclaimspb.Envelope, why string) (proto.Message, error) {
			return c.Stop(ctx, &fedclaimspb.ControlRequest{Envelope: env, Reason: why})
		}},
	} {
		sub := &cobra.Command{
			Use:   c.use + " --addr HOST:PORT --certs DIR --federation ID",
			Short: c.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runAdmin(cmd.Context(), a, o, c.use, c.call)
			},
		}
		if c.use != "status" && c.use != "sites" {
			sub.Flags().StringVar(&o.reason, "reason", "", "why, for the audit log")
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

func runAdmin(ctx context.Context, a *app, o adminFlags, name string, call func(context.Context, fedclaimspb.AdminClient, *fedclaimspb.Envelope, string) (proto.Message, error)) error {
	switch {
	case o.certsDir == "":
		return errors.New("admin " + name + ": flag --certs is required")
	case o.federation == "":
		return errors.New("admin " + name + ": flag --federation is required")
	}
	serverName := o.serverName
	if serverName == "" {
		host, _, err := net.SplitHostPort(o.addr)
		if err != nil {
			return fmt.Errorf("admin %s: flag --addr: %w", name, err)
		}
		serverName = host
	}
	tlsConf, err := certs.ClientTLS(certs.AdminFiles(o.certsDir), serverName)
	if err != nil {
		return fmt.Errorf("admin %s: %w", name, err)
	}
	conn, err := grpc.NewClient(o.addr, fedclaimspb.DialOptions(tlsConf)...)
	if err != nil {
		return fmt.Errorf("admin %s: %w", name, err)
	}
	defer conn.Close()
	resp, err := call(ctx, fedclaimspb.NewAdminClient(conn), &fedclaimspb.Envelope{FederationId: o.federation}, o.reason)
	if err != nil {
		return fmt.Errorf("admin %s at %s: %w", name, o.addr, err)
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
	if err != nil {
		return fmt.Errorf("admin %s: encoding the answer: %w", name, err)
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}
