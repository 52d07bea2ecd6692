package authcmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/zohook/zohook/internal/zoho"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `usage: worker auth <command> [flags]

commands:
  exchange -code CODE [-redirect-uri URI]   trade a self-client grant code for a refresh token
  login [-listen 127.0.0.1:8085]            authorization-code flow through your browser
  revoke                                    revoke ZOHOOK_ZOHO_REFRESH_TOKEN
  token                                     check the configuration by minting an access token

Configuration: ZOHOOK_ZOHO_CLIENT_ID, ZOHOOK_ZOHO_CLIENT_SECRET, ZOHOOK_ZOHO_REFRESH_TOKEN,
ZOHOOK_ZOHO_DC (us|eu|in|au|jp|ca|cn|sa), ZOHOOK_ZOHO_ACCOUNTS_URL, ZOHOOK_ZOHO_SCOPES.
Run "worker auth <command> -h" for the flags of a command.
`

// Run executes `worker auth` with args (without "auth") and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cfg, err := zoho.ConfigFromEnv(getenv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	r := &runner{cfg: cfg, out: stdout, errw: stderr, hc: &http.Client{Timeout: 30 * time.Second}}
	switch args[0] {
	case "exchange":
		return r.exchange(ctx, args[1:])
	case "login":
		return r.login(ctx, args[1:])
	case "revoke":
		return r.revoke(ctx, args[1:])
	case "token":
		return r.token(ctx, args[1:])
	}
	fmt.Fprintf(stderr, "worker auth: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

type runner struct {
	cfg  zoho.Config
	out  io.Writer
	errw io.Writer
	hc   *http.Client
}

func (r *runner) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("worker auth "+name, flag.ContinueOnError)
	fs.SetOutput(r.errw)
	fs.Usage = func() {
		fmt.Fprintf(r.errw, "usage: worker auth %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse returns (exit code, done).
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, true
		}
		return exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return exitUsage, true
	}
	return 0, false
}

func (r *runner) fail(err error) int {
	fmt.Fprintln(r.errw, "worker auth:", err)
	var te *zoho.TokenError
	if errors.As(err, &te) {
		switch {
		case te.Code == "invalid_client":
			fmt.Fprintln(r.errw, "hint: the client id is unknown in this data center; check ZOHOOK_ZOHO_DC / ZOHOOK_ZOHO_ACCOUNTS_URL (and enable multi-DC for the client)")
		case te.Code == "invalid_code":
			fmt.Fprintln(r.errw, "hint: the code (or refresh token) is expired, used or revoked; grant codes live only a few minutes")
		case te.Throttled():
			fmt.Fprintln(r.errw, "hint: Zoho allows 10 token requests per 10 minutes; wait and retry")
		}
	}
	return exitFail
}

func (r *runner) exchange(ctx context.Context, args []string) int {
	fs := r.flags("exchange", "exchange -code CODE [-redirect-uri URI]")
	code := fs.String("code", "", "grant code from the API console (Self Client → Generate Code)")
	redirect := fs.String("redirect-uri", "", "redirect URI registered for the client (not needed for a self client)")
	if rc, done := parse(fs, args); done {
		return rc
	}
	if *code == "" {
		fmt.Fprintln(r.errw, "worker auth exchange: -code is required")
		fs.Usage()
		return exitUsage
	}
	if err := r.cfg.ValidateClient(); err != nil {
		return r.fail(err)
	}
	g, err := zoho.NewOAuth(r.cfg, r.hc).Exchange(ctx, *code, *redirect)
	if err != nil {
		return r.fail(err)
	}
	return r.printGrant(g, r.cfg, "")
}

// printGrant prints the refresh token and the variables to set.
func (r *runner) printGrant(g *zoho.Grant, cfg zoho.Config, location string) int {
	if g.RefreshToken == "" {
		fmt.Fprintln(r.errw, "worker auth: Zoho returned no refresh token; the consent must ask for access_type=offline (and prompt=consent when re-authorizing)")
		return exitFail
	}
	fmt.Fprintf(r.out, "Refresh token obtained (api_domain %s, scope %s).\n", g.APIDomain, g.Scope)
	fmt.Fprintln(r.out, "Set these environment variables for the worker:")
	fmt.Fprintf(r.out, "%s=%s\n", zoho.EnvRefreshToken, g.RefreshToken)
	if dc, ok := zoho.DCForAccountsURL(cfg.Accounts()); ok {
		fmt.Fprintf(r.out, "%s=%s\n", zoho.EnvDC, dc.Name)
	} else {
		fmt.Fprintf(r.out, "%s=%s\n", zoho.EnvAccountsURL, cfg.Accounts())
		if location != "" {
			fmt.Fprintf(r.out, "# Zoho reported location %q\n", location)
		}
	}
	fmt.Fprintf(r.out, "# API calls will go to %s (api_domain from the token response)\n", g.APIDomain)
	return exitOK
}

func randomState() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random state: %w", err)
	}
	return hex.EncodeToString(b), nil
}

type callback struct {
	code, accountsServer, location string
	err                            error
}

func (r *runner) login(ctx context.Context, args []string) int {
	fs := r.flags("login", "login [-listen 127.0.0.1:8085] [-redirect-uri URI] [-timeout 5m]")
	listen := fs.String("listen", "127.0.0.1:8085", "address of the local callback server")
	redirect := fs.String("redirect-uri", "", "redirect URI registered for the client (default http://LISTEN/callback)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the browser")
	if rc, done := parse(fs, args); done {
		return rc
	}
	if err := r.cfg.ValidateClient(); err != nil {
		return r.fail(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return r.fail(fmt.Errorf("listen %s: %w", *listen, err))
	}
	defer ln.Close()
	redirectURI := *redirect
	if redirectURI == "" {
		redirectURI = "http://" + ln.Addr().String() + "/callback"
	}
	state, err := randomState()
	if err != nil {
		return r.fail(err)
	}
	results := make(chan callback, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/callback", func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		cb := callback{code: q.Get("code"), accountsServer: q.Get("accounts-server"), location: q.Get("location")}
		switch {
		case q.Get("state") != state:
			http.Error(w, "state mismatch: restart `worker auth login`", http.StatusBadRequest)
			return // a stray or forged request must not end the flow
		case q.Get("error") != "":
			cb.err = fmt.Errorf("consent refused: %s", q.Get("error"))
		case cb.code == "":
			cb.err = errors.New("callback without code")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if cb.err != nil {
			fmt.Fprintf(w, "<p>zohook: %s</p>", html.EscapeString(cb.err.Error()))
		} else {
			fmt.Fprint(w, "<p>zohook: authorization received, you can close this tab.</p>")
		}
		select {
		case results <- cb:
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	fmt.Fprintln(r.out, "Open this URL in a browser and approve access:")
	fmt.Fprintln(r.out, zoho.NewOAuth(r.cfg, r.hc).AuthCodeURL(redirectURI, state))
	fmt.Fprintf(r.out, "Waiting for the redirect to %s ...\n", redirectURI)

	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var cb callback
	select {
	case cb = <-results:
	case <-wctx.Done():
		return r.fail(fmt.Errorf("no redirect received: %w", wctx.Err()))
	}
	if cb.err != nil {
		return r.fail(cb.err)
	}
	cfg := r.cfg
	if cb.accountsServer != "" && !strings.EqualFold(strings.TrimRight(cb.accountsServer, "/"), cfg.Accounts()) {
		// The user's DC differs (§1.2): the code must be exchanged there. Only
		// Zoho's own accounts servers are trusted with the client secret.
		dc, ok := zoho.DCForAccountsURL(cb.accountsServer)
		if !ok {
			return r.fail(fmt.Errorf("refusing accounts-server %q: not a known Zoho accounts server", cb.accountsServer))
		}
		cfg.DC, cfg.AccountsURL = dc.Name, ""
		fmt.Fprintf(r.out, "Your account lives in data center %q (%s).\n", dc.Name, dc.AccountsURL)
	}
	g, err := zoho.NewOAuth(cfg, r.hc).Exchange(ctx, cb.code, redirectURI)
	if err != nil {
		return r.fail(err)
	}
	return r.printGrant(g, cfg, cb.location)
}

func (r *runner) revoke(ctx context.Context, args []string) int {
	fs := r.flags("revoke", "revoke")
	if rc, done := parse(fs, args); done {
		return rc
	}
	if err := r.cfg.Validate(); err != nil {
		return r.fail(err)
	}
	if err := zoho.NewOAuth(r.cfg, r.hc).Revoke(ctx, r.cfg.RefreshToken); err != nil {
		return r.fail(err)
	}
	fmt.Fprintf(r.out, "Refresh token revoked; its access tokens are dead too. Remove %s.\n", zoho.EnvRefreshToken)
	return exitOK
}

func (r *runner) token(ctx context.Context, args []string) int {
	fs := r.flags("token", "token")
	if rc, done := parse(fs, args); done {
		return rc
	}
	if err := r.cfg.Validate(); err != nil {
		return r.fail(err)
	}
	g, err := zoho.NewOAuth(r.cfg, r.hc).Refresh(ctx)
	if err != nil {
		return r.fail(err)
	}
	fmt.Fprintf(r.out, "Configuration OK: access token minted (not shown).\napi_domain: %s\nexpires:    %s (in %s)\n",
		g.APIDomain, g.Expiry.Format(time.RFC3339), time.Until(g.Expiry).Round(time.Second))
	fmt.Fprintf(r.out, "CRM base:   %s\nBooks base: %s\n", r.cfg.CRMBase(g.APIDomain), r.cfg.BooksBase(g.APIDomain))
	return exitOK
}
