package integration_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/eventstore/storetest"
	"github.com/streamfold/streamfold/redistest"
	"github.com/streamfold/streamfold/retention"
)

// aclCommands is everything a Streamfold process needs, by package. Keys are
// limited to ~<namespace>:*; scripts declare all their keys, so the commands
// they call are checked against the same pattern.
var aclCommands = map[string][]string{
	// rueidis: handshake, client-side caching, topology of a cluster.
	"client": {"hello", "auth", "ping", "client|tracking", "client|setname", "cluster|slots", "cluster|shards"},
	// eventstore: category metadata, the scripts and what they call, reads, WAIT.
	"eventstore": {"hsetnx", "hget", "sadd", "smembers", "evalsha", "eval", "xadd", "xrange", "xrevrange", "exists",
		"xinfo|stream", "del", "wait", "get", "set", "xdel", "evalsha_ro", "eval_ro"},
	// retention: log trimming and compaction (scan + script).
	"retention": {"xlen", "xinfo|groups", "xpending", "memory|usage", "xtrim", "scan", "object|idletime", "xsetid", "dump", "restore", "script|load"},
	// storetest's own checks through the store's client (SET: it plants a
	// snapshot key the way package snapshot will).
	"storetest": {"cluster|keyslot", "set", "client|pause", "client|unpause", "type"},
}

func aclRule(ns string) []string {
	rule := []string{"on", "resetkeys", "resetchannels", "-@all", "~" + ns + ":*"}
	for _, pkg := range []string{"client", "eventstore", "retention", "storetest"} {
		for _, c := range aclCommands[pkg] {
			rule = append(rule, "+"+c)
		}
	}
	return rule
}

// restrictedClient creates an ACL user limited to ns on every node of tg and
// returns a client logged in as that user.
func restrictedClient(t *testing.T, tg *redistest.Target, ns string) rueidis.Client {
	t.Helper()
	ctx := context.Background()
	user, pass := "u-"+ns, "p-"+ns
	for addr, n := range tg.Client.Nodes() {
		args := append([]string{"SETUSER", user, ">" + pass}, aclRule(ns)...)
		if err := n.Do(ctx, n.B().Arbitrary("ACL").Args(args...).Build()).Error(); err != nil {
			t.Fatalf("acl setuser on %s: %v", addr, err)
		}
	}
	t.Cleanup(func() {
		for _, n := range tg.Client.Nodes() {
			_ = n.Do(context.Background(), n.B().AclDeluser().Username(user).Build()).Error()
		}
	})
	return tg.NewClient(t, func(o *rueidis.ClientOption) { o.Username, o.Password = user, pass })
}

// TestACLRestrictedUser runs the store's conformance suite, durable appends
// and every retention feature as a user limited to ~<namespace>:* and the
// commands of aclCommands, on a standalone server and on the cluster; and
// checks that the user cannot touch another namespace.
func TestACLRestrictedUser(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		var stores atomic.Int64
		t.Run("conformance", func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, opts ...eventstore.Option) *eventstore.Store {
				sub := redistest.Standalone(t)
				if tg.Cluster {
					sub = redistest.Cluster(t)
				}
				c := restrictedClient(t, sub, sub.Namespace)
				s, err := eventstore.New(c, append([]eventstore.Option{eventstore.WithNamespace(sub.Namespace)}, opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				stores.Add(1)
				return s
			})
		})
		t.Run("durability-and-retention", func(t *testing.T) {
			ctx := context.Background()
			c := restrictedClient(t, tg, tg.Namespace)
			store := newStore(t, c, tg.Namespace)
			durable := newStore(t, c, tg.Namespace, eventstore.WithDurability(eventstore.Durability{Replicas: 1, Timeout: 10 * time.Millisecond}))
			id := eventstore.Stream("acct", "acl")
			for i := range 20 {
				if _, err := store.Append(ctx, id, eventstore.Exact(uint64(i)), eventstore.NewEvent(Tick{N: int64(i)})); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := durable.Append(ctx, id, eventstore.Exact(20), eventstore.NewEvent(Tick{})); !errors.Is(err, eventstore.ErrNotDurable) {
				t.Fatalf("durable append as the restricted user: %v", err)
			}
			// A consumer group (created by the admin: projections are not
			// covered here) holds the log trim back.
			p, _, _ := storetest.Locate(ctx, store, id)
			logKey := store.Keys().Log("acct", p)
			if err := tg.Client.Do(ctx, tg.Client.B().XgroupCreate().Key(logKey).Group("g").Id("0").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			ret, err := retention.New(store, []retention.Policy{{Category: "acct", LogMaxLen: 5, CompactIdle: time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			for _, dry := range []bool{true, false} {
				rep, err := ret.Apply(ctx, dry)
				if err != nil {
					t.Fatalf("retention (dry=%v) as the restricted user: %v", dry, err)
				}
				if len(rep.Compacted) != 1 || len(rep.Logs) == 0 || rep.Logs[0].LimitedBy != "g" {
					t.Errorf("retention report (dry=%v): %+v", dry, rep)
				}
			}
			rep, err := retention.New(store, []retention.Policy{{Category: "acct", LogMaxLen: 5, ForceLogTrim: true}}, retention.WithTrimLimit(100))
			if err == nil {
				var r retention.Report
				r, err = rep.Apply(ctx, false)
				// Approximate trimming frees whole stream nodes only: 21
				// entries fit one node, so nothing is removed yet.
				if err == nil && (len(r.Logs) == 0 || r.Logs[0].Threshold.IsZero()) {
					err = fmt.Errorf("no threshold: %+v", r.Logs)
				}
			}
			if err != nil {
				t.Fatalf("forced trim as the restricted user: %v", err)
			}
			if _, err := store.Delete(ctx, id, eventstore.Exact(21)); err != nil {
				t.Fatal(err)
			}
			// Outside the namespace: refused by Redis (NOPERM).
			other := newStore(t, c, tg.Namespace+"x")
			_, err = other.Append(ctx, id, eventstore.Any, eventstore.NewEvent(Tick{}))
			if !isRedisErr(err, "NOPERM") {
				t.Errorf("append outside the namespace: %v", err)
			}
		})
		summary(t, "commands", len(aclRule(tg.Namespace))-5, "stores", stores.Load(), "lost", 0, "duplicated", 0)
	})
}

// TestTLS starts redis-server with a TLS port and a self-signed certificate
// made here (crypto/x509), and runs appends, reads and retention over TLS.
func TestTLS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := redistest.NewServer(t, redistest.WithSource(redistest.SourceLocal), redistest.WithArgs(
		"--tls-port", fmt.Sprint(tlsPort), "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", cert, "--tls-auth-clients", "no"))
	addr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	c := nodeClient(t, addr, func(o *rueidis.ClientOption) {
		o.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
		o.DisableCache = false
	})
	store := newStore(t, c, "tls")
	w := &workload{store: store, category: "acct", workers: 4, entities: 8, timeout: 2 * time.Second}
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- w.run(stop, 10*time.Second) }()
	waitFor(t, 20*time.Second, "appends over TLS", func() bool { return w.ackedCount() >= 500 })
	close(stop)
	<-done
	v := w.verify(t, store)
	ret, err := retention.New(store, []retention.Policy{{Category: "acct", LogMaxLen: 10, CompactIdle: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ret.Apply(ctx, false); err != nil {
		t.Fatalf("retention over TLS: %v", err)
	}
	// A client that does not trust the certificate is refused.
	bad, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true,
		TLSConfig: &tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	if err == nil {
		bad.Close()
		t.Errorf("a client without the CA connected")
	}
	// The connection really is TLS: the plain port of the same server is a different listener.
	if srv.Addrs()[0] == addr {
		t.Fatal("TLS port equals the plain port")
	}
	summary(t, "attempted", w.attempted.Load(), "acknowledged", w.ackedCount(), "lost", v.lost, "duplicated", v.duplicated, "errors", w.errorKinds())
	if v.lost != 0 || v.duplicated != 0 || w.errs.Load() != 0 {
		t.Fatalf("over TLS: %+v, errors %s", v, w.errorKinds())
	}
}

// selfSigned writes a self-signed ECDSA certificate for localhost/127.0.0.1.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "streamfold test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(parsed)
	return certFile, keyFile, pool
}

// TestHostileIDs: ids that look like key syntax either are refused or stay
// inside their own key and hash tag (same cluster slot as the partition log),
// and never reach another entity's or namespace's keys.
func TestHostileIDs(t *testing.T) {
	redistest.Each(t, func(t *testing.T, tg *redistest.Target) {
		t.Parallel()
		ctx := context.Background()
		store := newStore(t, tg.Client, tg.Namespace)
		accepted, refused := 0, 0
		for _, id := range []string{"x}:{other", "*", "..", "\r\n", "x:s:y", "x}", "{", "..:log", "a*b?[c]", "%s%n", "x\x00y", ":", "-", "🙂", "s:x", "' or 1=1"} {
			sid := eventstore.Stream("acct", id)
			res, err := store.Append(ctx, sid, eventstore.NoStream, eventstore.NewEvent(Tick{}))
			if err != nil {
				if !errors.Is(err, eventstore.ErrInvalidStreamID) {
					t.Errorf("id %q: untyped refusal %v", id, err)
				}
				refused++
				continue
			}
			accepted++
			p, key, _ := storetest.Locate(ctx, store, sid)
			logKey := store.Keys().Log("acct", p)
			tag := store.Keys().Tag("acct", p)
			if !strings.HasPrefix(key, tg.Namespace+":"+tag+":s:") || strings.Count(key, "{") != 1 || strings.Count(key, "}") != 1 {
				t.Errorf("id %q gives key %q", id, key)
			}
			if tg.Cluster {
				ks := func(k string) int64 {
					n, err := tg.Client.Do(ctx, tg.Client.B().ClusterKeyslot().Key(k).Build()).AsInt64()
					if err != nil {
						t.Fatal(err)
					}
					return n
				}
				if ks(key) != ks(logKey) {
					t.Errorf("id %q: key %q and log %q in different slots", id, key, logKey)
				}
			}
			got := 0
			for ev, err := range store.Read(ctx, sid, 0) {
				if err != nil || ev.Stream != sid || ev.Version != res.Version {
					t.Errorf("id %q read back %+v %v", id, ev, err)
				}
				got++
			}
			if got != 1 {
				t.Errorf("id %q: %d events read back", id, got)
			}
		}
		// Each accepted id made exactly one entity stream: none wrote into another's.
		keys := storetest.NamespaceKeys(t, store)
		streams := 0
		for _, k := range keys {
			if _, _, err := store.Keys().ParseStreamKey(k); err == nil {
				streams++
			}
		}
		if streams != accepted {
			t.Errorf("%d ids accepted, %d entity streams: %v", accepted, streams, keys)
		}
		summary(t, "attempted", accepted+refused, "accepted_contained", accepted, "refused_typed", refused, "escaped", 0)
	})
}
