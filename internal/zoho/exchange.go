package zoho

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxExchangeBody is how much of a request body an Exchange keeps.
const MaxExchangeBody = 16 << 10

// Exchange is one HTTP attempt the client made: what was sent and what
// Zoho answered. It never holds a token (no headers are kept), a client
// secret or a refresh token (redacted in queries and bodies), nor the
// content of an uploaded file (multipart bodies are summarised).
type Exchange struct {
	API    string // APICRM, APIBooks or APIAccounts
	Method string
	// Path is the URL path, without scheme and host (/crm/v8/Deals/1).
	Path string
	// Query is the query string sent, secret values replaced by [REDACTED].
	Query url.Values
	// RequestBody is the body sent: JSON as sent (secret values
	// redacted), a url-encoded form with secrets redacted, or for
	// multipart/form-data a JSON summary of the parts (names, file names,
	// content types, sizes; never the content). At most MaxExchangeBody
	// bytes; RequestBodySize is the full size.
	RequestBody     []byte
	RequestBodySize int
	// Status is the HTTP status Zoho answered, as is (a 201 stays 201); 0
	// when no answer came (connection refused, timeout).
	Status int
	// Code and Message are Zoho's: its error code and message for a
	// failure, the per-record code (SUCCESS) or Books' code 0 and message
	// for a success; for an answer that never came, Message is the error.
	Code     string
	Message  string
	Duration time.Duration
	// Attempt numbers the HTTP attempts of one call, from 1 (retries and
	// the retry after a refreshed token count).
	Attempt int
}

// Exchanges collects the exchanges of the calls made with a context that
// carries it (WithExchanges). It is safe for concurrent use.
type Exchanges struct {
	mu   sync.Mutex
	list []Exchange
}

// List returns the exchanges recorded so far, in the order they ended.
func (e *Exchanges) List() []Exchange {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Exchange(nil), e.list...)
}

func (e *Exchanges) add(x Exchange) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, x)
}

type exchangesKey struct{}

// WithExchanges returns a context whose Zoho calls append every HTTP
// exchange they make to rec: the worker attaches one per action to log
// and count what Zoho really answered.
func WithExchanges(ctx context.Context, rec *Exchanges) context.Context {
	return context.WithValue(ctx, exchangesKey{}, rec)
}

func exchangesFrom(ctx context.Context) *Exchanges {
	rec, _ := ctx.Value(exchangesKey{}).(*Exchanges)
	return rec
}

// secretKeys are query, form and JSON keys whose values are never
// recorded: OAuth credentials and the CRM notification channel token.
var secretKeys = map[string]bool{
	"access_token": true, "refresh_token": true, "client_secret": true, "code": true, "token": true,
	"authtoken": true, "password": true, "secret": true, "api_key": true, "apikey": true, "zapikey": true,
}

func isSecretKey(k string) bool { return secretKeys[strings.ToLower(k)] }

func redactValues(v url.Values) url.Values {
	if len(v) == 0 {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		if isSecretKey(k) {
			out[k] = []string{redacted}
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// exchangeBody renders a request body for an Exchange (see RequestBody).
func exchangeBody(body []byte, contentType string) []byte {
	if len(body) == 0 {
		return nil
	}
	mt, params, _ := mime.ParseMediaType(contentType)
	var out []byte
	switch {
	case mt == "multipart/form-data":
		out = multipartSummary(body, params["boundary"])
	case mt == "application/x-www-form-urlencoded":
		if v, err := url.ParseQuery(string(body)); err == nil {
			out = []byte(redactValues(v).Encode())
		} else {
			out = []byte(`"[unreadable form body]"`)
		}
	case json.Valid(body):
		out = redactJSONKeys(body)
	default:
		out = body
	}
	if len(out) > MaxExchangeBody {
		out = out[:MaxExchangeBody]
	}
	return bytes.Clone(out)
}

// multipartSummary lists the parts of a multipart body, never their
// content: a file part can be 20 MB of someone's document.
func multipartSummary(body []byte, boundary string) []byte {
	type part struct {
		Name        string `json:"name"`
		FileName    string `json:"filename,omitempty"`
		ContentType string `json:"content_type,omitempty"`
		Size        int64  `json:"size"`
	}
	parts := []part{}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		n, _ := io.Copy(io.Discard, p)
		parts = append(parts, part{Name: p.FormName(), FileName: p.FileName(), ContentType: p.Header.Get("Content-Type"), Size: n})
	}
	b, _ := json.Marshal(map[string]any{"multipart": parts})
	return b
}

// redactJSONKeys replaces the values of secret keys (see secretKeys) in a JSON
// document, keeping everything else byte for byte as sent: key order,
// number text and escapes. Most bodies hold no such key and are returned
// as they are.
func redactJSONKeys(body []byte) []byte {
	if !mayHoldSecret(body) {
		return body
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var out bytes.Buffer
	if err := redactValue(dec, &out); err != nil {
		return []byte(`"[unreadable JSON body]"`)
	}
	return out.Bytes()
}

func mayHoldSecret(body []byte) bool {
	lower := bytes.ToLower(body)
	for k := range secretKeys {
		if k != "code" && bytes.Contains(lower, []byte(`"`+k+`"`)) {
			return true
		}
	}
	return false
}

// redactValue copies one JSON value from dec to out, redacting the values
// of secret keys in objects.
func redactValue(dec *json.Decoder, out *bytes.Buffer) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			out.WriteByte('{')
			for i := 0; dec.More(); i++ {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if i > 0 {
					out.WriteByte(',')
				}
				kb, _ := json.Marshal(k)
				out.Write(kb)
				out.WriteByte(':')
				// "code" is a grant code in a query or form, but in a JSON body
				// it is data (a Books item code, Zoho's status code).
				if k != "code" && isSecretKey(k) {
					var skip json.RawMessage
					if err := dec.Decode(&skip); err != nil {
						return err
					}
					out.WriteString(`"` + redacted + `"`)
					continue
				}
				if err := redactValue(dec, out); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // }
				return err
			}
			out.WriteByte('}')
		case '[':
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				if err := redactValue(dec, out); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ]
				return err
			}
			out.WriteByte(']')
		}
	case string:
		b, _ := json.Marshal(t)
		out.Write(b)
	case json.Number:
		out.WriteString(t.String())
	case bool:
		out.WriteString(strconv.FormatBool(t))
	case nil:
		out.WriteString("null")
	}
	return nil
}

// answerCode reads Zoho's code and message from a successful answer:
// Books' {"code":0,"message":"..."} or CRM's per-record data[0].code
// (SUCCESS). Lists carry neither; large bodies are not decoded.
func answerCode(body []byte) (code, message string) {
	if len(body) == 0 || len(body) > 1<<20 {
		return "", ""
	}
	// Only the codes: decoding a record's answer into maps just to find
	// them cost more than the rest of the recording.
	type coded struct {
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"`
		Status  json.RawMessage `json:"status"`
	}
	var m struct {
		coded
		Data  []coded `json:"data"`
		Watch []coded `json:"watch"`
	}
	if json.Unmarshal(body, &m) != nil {
		return "", ""
	}
	text := func(raw json.RawMessage) string { return str(decodeNumber(raw)) }
	if c := codeString(decodeNumber(m.Code)); c != "" {
		return c, text(m.Message)
	}
	for _, arr := range [][]coded{m.Data, m.Watch} {
		// A per-record result has code, message and status; a row of data
		// (COQL, a search) may have a field named code.
		if len(arr) > 0 && len(arr[0].Status) > 0 {
			if c := codeString(decodeNumber(arr[0].Code)); c != "" {
				return c, text(arr[0].Message)
			}
		}
	}
	return "", ""
}

// decodeNumber decodes one JSON value keeping numbers as json.Number.
func decodeNumber(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return nil
	}
	return v
}

// recordExchange appends the outcome of one HTTP attempt to rec. res is
// nil when no answer came; err is then the transport error. scrub replaces
// known secret values (the access token, the client secret, the refresh
// token) wherever they appear: the last line of defence, as in debug logs.
func recordExchange(rec *Exchanges, api string, req *http.Request, body []byte, attempt int, d time.Duration, res *rawResult, err error, scrub func(string) string) {
	q := redactValues(req.URL.Query())
	for k, vs := range q {
		for i, v := range vs {
			vs[i] = scrub(v)
		}
		q[k] = vs
	}
	x := Exchange{API: api, Method: req.Method, Path: scrub(req.URL.Path), Query: q,
		RequestBody: []byte(scrub(string(exchangeBody(body, req.Header.Get("Content-Type"))))), RequestBodySize: len(body),
		Duration: d, Attempt: attempt}
	if len(x.RequestBody) == 0 {
		x.RequestBody = nil
	}
	switch {
	case res != nil:
		x.Status = res.status
		var ze *Error
		switch {
		case errors.As(err, &ze):
			x.Code, x.Message = ze.Code, ze.Message
		case api == APICRM && req.Method == http.MethodGet && res.status < 300:
			// A CRM read that worked carries records, not a code: scanning
			// a record's answer for one cost 8% of a worker's CPU (and a
			// record field named "code" is not Zoho's code).
		default:
			x.Code, x.Message = answerCode(res.body)
		}
	case err != nil:
		x.Message = err.Error()
	}
	x.Message = scrub(x.Message)
	rec.add(x)
}

// recordTokenExchange records an Accounts token request: the form body
// holds the client secret and the refresh token, both redacted.
func recordTokenExchange(ctx context.Context, req *http.Request, form url.Values, start time.Time, status int, code, message string) {
	rec := exchangesFrom(ctx)
	if rec == nil {
		return
	}
	body := []byte(redactValues(form).Encode())
	rec.add(Exchange{API: APIAccounts, Method: req.Method, Path: req.URL.Path, RequestBody: body, RequestBodySize: len(body),
		Status: status, Code: code, Message: message, Duration: time.Since(start), Attempt: 1})
}
