package events

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Role is what a NATS user may do. The embedded server knows one NKey user
// per role; a cluster's server configuration should grant the same
// permissions (deploy/nats has an example the cluster tests run).
type Role string

// The roles.
const (
	// RoleAdmin may do everything: the receiver's own in-process connection
	// (it owns the layout) and operator commands (setup, status, dlq,
	// replay, channels, auth).
	RoleAdmin Role = "admin"
	// RoleWorker may consume, acknowledge, read and write the buckets and
	// publish events (reconciliation) and dead letters, but never create,
	// change, purge or delete a stream, nor touch the work stream's
	// consumers.
	RoleWorker Role = "worker"
	// RoleReceiver may only publish events, read the stream layout and
	// read channel tokens: it can never read the shared Zoho access token,
	// the journal or the dead letters.
	RoleReceiver Role = "receiver"
)

// Roles lists every role, in a stable order.
var Roles = []Role{RoleAdmin, RoleWorker, RoleReceiver}

// channelsBucket is the one bucket the receiver role reaches (package
// channels defines the same default; the layout test keeps them in step).
const channelsBucket = "zohook_channels"

// Permissions returns the NATS permissions of role (nil: everything).
func Permissions(role Role) *server.Permissions {
	switch role {
	case RoleWorker:
		return &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{
				"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>",
				"$JS.API.CONSUMER.CREATE." + DefaultStreamName + ".>", "$JS.API.CONSUMER.CREATE." + DefaultStreamName,
				"$JS.API.CONSUMER.DURABLE.CREATE." + DefaultStreamName + ".>", "$JS.API.CONSUMER.DELETE." + DefaultStreamName + ".>",
			}},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}},
		}
	case RoleReceiver:
		kv := func(bucket string) []string {
			s := KVStreamName(bucket)
			return []string{"$JS.API.DIRECT.GET." + s + ".>", "$JS.API.DIRECT.GET." + s, "$JS.API.STREAM.MSG.GET." + s}
		}
		allow := []string{
			SubjectPrefix + ".>", "$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.CONSUMER.INFO.>",
			// The layout check: is the history's source consumer there?
			"$JS.API.CONSUMER.NAMES." + DefaultStreamName,
			// Watching the channel tokens: an ordered consumer on that bucket only.
			"$JS.API.CONSUMER.CREATE." + KVStreamName(channelsBucket) + ".>", "$JS.API.CONSUMER.CREATE." + KVStreamName(channelsBucket),
			"$JS.API.CONSUMER.DELETE." + KVStreamName(channelsBucket) + ".>", "$JS.FC." + KVStreamName(channelsBucket) + ".>",
		}
		allow = append(allow, kv(channelsBucket)...)
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: allow},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		}
	}
	return nil
}

// EmbeddedSeedFile is where the embedded server keeps role's NKey seed
// under its data directory.
func EmbeddedSeedFile(dataDir string, role Role) string {
	return filepath.Join(dataDir, "nats-auth", string(role)+".nk")
}

// embeddedUsers loads the seeds under dataDir, creating missing ones (mode
// 0600 in a 0700 directory), and returns the server's users.
func embeddedUsers(dataDir string) ([]*server.NkeyUser, error) {
	dir := filepath.Dir(EmbeddedSeedFile(dataDir, RoleAdmin))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("events: nats credentials directory: %w", err)
	}
	var users []*server.NkeyUser
	for _, role := range Roles {
		kp, err := loadOrCreateSeed(EmbeddedSeedFile(dataDir, role))
		if err != nil {
			return nil, err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("events: nats %s key: %w", role, err)
		}
		users = append(users, &server.NkeyUser{Nkey: pub, Permissions: Permissions(role)})
	}
	return users, nil
}

func loadOrCreateSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("events: create nats key: %w", err)
		}
		seed, err := kp.Seed()
		if err != nil {
			return nil, fmt.Errorf("events: create nats key: %w", err)
		}
		// O_EXCL: two processes starting at once must not overwrite each
		// other's seed; the loser reads the winner's.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateSeed(path)
		}
		if err != nil {
			return nil, fmt.Errorf("events: write %s: %w", path, err)
		}
		if _, err := f.Write(append(seed, '\n')); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("events: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("events: write %s: %w", path, err)
		}
		return kp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("events: read %s: %w", path, err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		// Never echo the file's content: it is a secret.
		return nil, fmt.Errorf("events: %s does not hold an NKey user seed", path)
	}
	return kp, nil
}

// RedactURL removes credentials from NATS URLs (comma-separated) for messages.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		u.User = url.User("redacted")
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
