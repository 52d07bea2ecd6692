package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/zohook/zohook/internal/app"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
)

// loadNodeConfig parses a node configuration of deploy/nats with roles'
// public keys in the environment, as nats-server does.
func loadNodeConfig(t *testing.T, conf string, roles *natsRoles) *server.Options {
	t.Helper()
	for _, kv := range roles.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("%s: %v", conf, err)
	}
	return opts
}

// rolePublicKey returns role's public key from roles.env.
func rolePublicKey(roles *natsRoles, role events.Role) string {
	for _, kv := range roles.env {
		if k, v, _ := strings.Cut(kv, "="); k == roleKeyEnv(role) {
			return v
		}
	}
	return ""
}

// normalizePermissions sorts the subject lists so that two permission sets
// compare by content, and makes empty lists nil.
func normalizePermissions(p *server.Permissions) *server.Permissions {
	if p == nil {
		return nil
	}
	sp := func(s *server.SubjectPermission) *server.SubjectPermission {
		if s == nil || len(s.Allow) == 0 && len(s.Deny) == 0 {
			return nil
		}
		out := &server.SubjectPermission{}
		if len(s.Allow) > 0 {
			out.Allow = slices.Sorted(slices.Values(s.Allow))
		}
		if len(s.Deny) > 0 {
			out.Deny = slices.Sorted(slices.Values(s.Deny))
		}
		return out
	}
	out := &server.Permissions{Publish: sp(p.Publish), Subscribe: sp(p.Subscribe), Response: p.Response}
	if out.Publish == nil && out.Subscribe == nil && out.Response == nil {
		return nil
	}
	return out
}

// The node configurations of deploy/nats (what compose.yaml and the cluster
// tests run) know exactly one NKey user per role, with the permissions
// events.Permissions gives that role on the receiver's embedded server;
// no other way in (no password users, no anonymous user).
func TestDeployNATSConfigsGrantRolePermissions(t *testing.T) {
	roles := newNATSRoles(t)
	for i, conf := range clusterConfigs() {
		opts := loadNodeConfig(t, conf, roles)
		name := "n" + string(rune('1'+i))
		if opts.ServerName != name {
			t.Errorf("%s: server_name %q, want %q", conf, opts.ServerName, name)
		}
		if !opts.JetStream || opts.Cluster.Name == "" || len(opts.Routes) != 3 {
			t.Errorf("%s: jetstream %v, cluster %q, %d routes: want JetStream in a named 3-node cluster", conf, opts.JetStream, opts.Cluster.Name, len(opts.Routes))
		}
		if opts.MaxPayload != 8<<20 {
			t.Errorf("%s: max_payload %d, want 8 MiB (as the embedded server)", conf, opts.MaxPayload)
		}
		if len(opts.Users) > 0 || opts.NoAuthUser != "" || opts.Username != "" || opts.Authorization != "" {
			t.Errorf("%s: a way in other than the roles' NKeys (users %d, no_auth_user %q)", conf, len(opts.Users), opts.NoAuthUser)
		}
		if len(opts.Nkeys) != len(events.Roles) {
			t.Errorf("%s: %d NKey users, want one per role (%v)", conf, len(opts.Nkeys), events.Roles)
		}
		byKey := map[string]*server.NkeyUser{}
		for _, u := range opts.Nkeys {
			byKey[u.Nkey] = u
		}
		for _, role := range events.Roles {
			u, ok := byKey[rolePublicKey(roles, role)]
			if !ok {
				t.Errorf("%s: no user for role %s (its key from %s)", conf, role, roleKeyEnv(role))
				continue
			}
			got, want := normalizePermissions(u.Permissions), normalizePermissions(events.Permissions(role))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: role %s differs from events.Permissions(%q):\n%s", conf, role, role, permDiff(got, want))
			}
		}
	}
}

// permDiff lists what one permission set has and the other lacks.
func permDiff(conf, code *server.Permissions) string {
	lists := func(p *server.Permissions) map[string][]string {
		out := map[string][]string{}
		if p == nil {
			out["everything"] = []string{"(no restriction)"}
			return out
		}
		for _, k := range []struct {
			name string
			sp   *server.SubjectPermission
		}{{"publish", p.Publish}, {"subscribe", p.Subscribe}} {
			if k.sp != nil {
				out[k.name+" allow"], out[k.name+" deny"] = k.sp.Allow, k.sp.Deny
			}
		}
		return out
	}
	a, b := lists(conf), lists(code)
	var lines []string
	for _, k := range []string{"everything", "publish allow", "publish deny", "subscribe allow", "subscribe deny"} {
		for _, s := range a[k] {
			if !slices.Contains(b[k], s) {
				lines = append(lines, fmt.Sprintf("  %s: %s only in the conf", k, s))
			}
		}
		for _, s := range b[k] {
			if !slices.Contains(a[k], s) {
				lines = append(lines, fmt.Sprintf("  %s: %s only in events.Permissions", k, s))
			}
		}
	}
	return strings.Join(lines, "\n")
}

// A server started from deploy/nats/n1.conf (alone: no routes) enforces
// those permissions: nobody gets in without a key, the receiver can store
// events but not create a stream or read the shared Zoho access token,
// the worker can read the token but not delete a stream.
func TestDeployNATSConfigEnforcesRoles(t *testing.T) {
	roles := newNATSRoles(t)
	opts := loadNodeConfig(t, clusterConfigs()[0], roles)
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.Cluster, opts.Routes = server.ClusterOpts{}, nil
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	url := s.ClientURL()
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	adminJS, _ := jetstream.New(roles.connect(t, url, events.RoleAdmin))
	if _, err := app.EnsureLayout(ctx, adminJS, events.StreamConfig{}, events.ConsumerConfig{}, events.CreateMissing); err != nil {
		t.Fatalf("admin creates the layout: %v", err)
	}
	tokens, err := adminJS.KeyValue(ctx, fleet.DefaultTokenBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Put(ctx, "default", []byte(`{"access_token":"secret"}`)); err != nil {
		t.Fatal(err)
	}

	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 2*time.Second) }
	denied := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: allowed", what)
		}
	}

	recvJS, _ := jetstream.New(roles.connect(t, url, events.RoleReceiver))
	c, cancelC := short()
	if _, err := recvJS.Publish(c, "zoho.crm.notify.default.Deals.update.0", []byte(`{}`)); err != nil {
		t.Errorf("receiver publishes an event: %v", err)
	}
	cancelC()
	c, cancelC = short()
	_, err = recvJS.CreateStream(c, jetstream.StreamConfig{Name: "INTRUDER", Subjects: []string{"intruder.>"}})
	cancelC()
	denied("receiver creates a stream", err)
	c, cancelC = short()
	if kv, err := recvJS.KeyValue(c, fleet.DefaultTokenBucket); err == nil {
		_, err = kv.Get(c, "default")
		denied("receiver reads the Zoho access token", err)
	}
	cancelC()

	workerJS, _ := jetstream.New(roles.connect(t, url, events.RoleWorker))
	c, cancelC = short()
	kv, err := workerJS.KeyValue(c, fleet.DefaultTokenBucket)
	if err == nil {
		_, err = kv.Get(c, "default")
	}
	cancelC()
	if err != nil {
		t.Errorf("worker reads the Zoho access token: %v", err)
	}
	c, cancelC = short()
	err = workerJS.DeleteStream(c, events.DefaultStreamName)
	cancelC()
	denied("worker deletes the work stream", err)
	if _, err := adminJS.Stream(ctx, "INTRUDER"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the receiver's stream exists after all: %v", err)
	}
	if _, err := adminJS.Stream(ctx, events.DefaultStreamName); err != nil {
		t.Errorf("the work stream is gone: %v", err)
	}
}

// deploy/gen-secrets.sh (run on a copy of deploy/) writes seeds whose
// public keys are the ones nats.env gives the node configurations, the
// other env files with fresh secrets, and overwrites nothing when run again.
func TestDeployGenSecrets(t *testing.T) {
	for _, tool := range []string{"bash", "openssl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := os.CopyFS(dir, os.DirFS(deployPath())); err != nil {
		t.Fatal(err)
	}
	// Secrets a developer generated in the working tree stay out of the copy.
	for _, pattern := range []string{"secrets/*.nk", "env/*.env"} {
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func() string {
		t.Helper()
		cmd := exec.Command("bash", filepath.Join(dir, "gen-secrets.sh"))
		cmd.Env = append(os.Environ(), "ZOHOOK_ROOT="+repoRoot())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gen-secrets.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	run()
	read := func(rel string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(read("env/nats.env")), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	roles := &natsRoles{seeds: map[events.Role]string{}}
	for _, role := range events.Roles {
		seedFile := filepath.Join(dir, "secrets", "nats-"+string(role)+".nk")
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(read("secrets/nats-" + string(role) + ".nk"))))
		if err != nil {
			t.Fatalf("%s: %v", seedFile, err)
		}
		pub, _ := kp.PublicKey()
		if env[roleKeyEnv(role)] != pub {
			t.Errorf("nats.env %s=%q, but the %s seed's public key is %s", roleKeyEnv(role), env[roleKeyEnv(role)], role, pub)
		}
		if fi, err := os.Stat(seedFile); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", seedFile, fi.Mode().Perm(), err)
		}
		roles.seeds[role] = seedFile
		roles.env = append(roles.env, roleKeyEnv(role)+"="+pub)
	}
	// The node configurations accept the written keys.
	opts := loadNodeConfig(t, filepath.Join(dir, "nats", "n1.conf"), roles)
	if len(opts.Nkeys) != len(events.Roles) {
		t.Fatalf("n1.conf with the generated nats.env: %d users", len(opts.Nkeys))
	}
	if !regexp.MustCompile(`^ZOHOOK_CRM_NOTIFY_TOKENS=[0-9a-f]{64}\n$`).MatchString(read("env/receiver.env")) {
		t.Errorf("receiver.env: %q", read("env/receiver.env"))
	}
	if !regexp.MustCompile(`(?m)^GF_SECURITY_ADMIN_PASSWORD=[0-9a-f]{32}$`).MatchString(read("env/grafana.env")) {
		t.Error("grafana.env has no generated password")
	}
	if read("env/worker.env") != read("env/worker.env.example") {
		t.Error("worker.env is not the example")
	}
	before := read("secrets/nats-admin.nk") + read("env/receiver.env") + read("env/grafana.env")
	if out := run(); !strings.Contains(out, "keeping them") {
		t.Errorf("second run: %s", out)
	}
	if read("secrets/nats-admin.nk")+read("env/receiver.env")+read("env/grafana.env") != before {
		t.Error("a second run changed existing secrets")
	}
}
