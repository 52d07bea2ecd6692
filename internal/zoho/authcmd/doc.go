// Package authcmd implements `worker auth ...`: the one-time OAuth chores
// around the Zoho client.
//
// Map of the package:
//
//   - authcmd.go: Run dispatches exchange | login | revoke | token.
//     exchange: self-client grant code → refresh token + api_domain, printed with the env lines to set.
//     login:    authorization-code flow with a local callback server (honours accounts-server, §1.2).
//     revoke:   revokes ZOHOOK_ZOHO_REFRESH_TOKEN (§1.4).
//     token:    mints an access token to check the configuration; prints only expiry and api_domain.
//
// Configuration comes from the ZOHOOK_ZOHO_* variables (zoho.ConfigFromEnv).
// Only exchange and login ever print a secret, and only the refresh token
// the operator asked for, to stdout.
package authcmd
