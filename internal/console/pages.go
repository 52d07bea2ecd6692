package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		fsrv.ServeHTTP(w, r)
	})
}

var pages = map[string]*template.Template{}

func init() {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		pages[name] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
	}
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		d := time.Since(t)
		switch {
		case d < 0:
			return "in " + roundDur(-d)
		case d < time.Second:
			return "just now"
		}
		return roundDur(d) + " ago"
	},
	"dur": func(d time.Duration) string {
		switch {
		case d <= 0:
			return "0"
		case d < time.Millisecond:
			return d.Round(time.Microsecond).String()
		case d < time.Second:
			return d.Round(100 * time.Microsecond).String()
		}
		return d.Round(time.Millisecond).String()
	},
	"pretty": func(raw json.RawMessage) string {
		if len(raw) == 0 {
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		var out bytes.Buffer
		if json.Indent(&out, raw, "", "  ") != nil {
			return string(raw)
		}
		return out.String()
	},
	"status": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"rate":   rateText,
	"tokens": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"join":   strings.Join,
	"final": func(s string) bool {
		return s == StatusDone || s == StatusSkipped || s == StatusDeadLettered
	},
	"okStatus": func(code int) bool { return code >= 200 && code < 300 },
	"partitions": func(ps []int) string {
		if len(ps) == 0 {
			return "none"
		}
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = strconv.Itoa(p)
		}
		return strings.Join(s, ", ")
	},
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// base is what every page's layout needs.
type base struct {
	Title  string
	Nav    string
	CSRF   string
	Dev    bool
	Prefix string
}

func (c *Console) base(r *http.Request, title string) base {
	nav := ""
	switch p := strings.TrimPrefix(r.URL.Path, Prefix); {
	case strings.HasPrefix(p, "events"):
		nav = "events"
	case strings.HasPrefix(p, "dead-letters"):
		nav = "dead-letters"
	case strings.HasPrefix(p, "health"):
		nav = "health"
	}
	return base{Title: title, Nav: nav, CSRF: c.formToken(), Dev: c.cfg.Dev && c.cfg.Password == "", Prefix: strings.TrimSuffix(Prefix, "/")}
}

// render executes a page into a buffer (a template error never sends half
// a page), scrubs known secrets and answers.
func (c *Console) render(w http.ResponseWriter, status int, name string, data any) {
	c.renderTemplate(w, status, name, "layout.html", data)
}

func (c *Console) renderTemplate(w http.ResponseWriter, status int, page, tmpl string, data any) {
	t := pages[page]
	var buf bytes.Buffer
	if t == nil {
		http.Error(w, "no template "+page, http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, tmpl, data); err != nil {
		c.log.Error("console: rendering a page failed", "page", page, "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(c.scrub.bytes(buf.Bytes()))
}

type errorView struct {
	base
	Status  int
	Message string
}

type eventsView struct {
	base
	Query    ListQuery
	Since    string
	Until    string
	Result   ListResult
	Values   map[string][]string
	Statuses []string
	Details  []string
	// Encoded is the query without paging (for live updates and links).
	Encoded    string
	OlderURL   string
	NewerURL   string
	Live       bool
	Index      IndexStats
	Error      string
	FilterOpen bool
}

func (c *Console) eventsData(r *http.Request) (eventsView, int) {
	v := eventsView{base: c.base(r, "Events"), Statuses: Statuses(), Index: c.ix.Stats(),
		Details: []string{"no_rule", "condition_false", "self_caused", "replayed", "failed"},
		Values: map[string][]string{"source": c.ix.Values("source"), "connection": c.ix.Values("connection"),
			"module": c.ix.Values("module"), "operation": c.ix.Values("operation")}}
	vals := r.URL.Query()
	v.Since, v.Until = vals.Get("since"), vals.Get("until")
	q, err := parseListQuery(vals, time.Now())
	v.Query = q
	if err != nil {
		v.Error = err.Error()
		v.Result.Events = []EventSummary{}
		return v, http.StatusBadRequest
	}
	res, err := c.ListEvents(r.Context(), q)
	if err != nil {
		v.Error = err.Error()
		v.Result.Events = []EventSummary{}
		return v, http.StatusBadGateway
	}
	v.Result = res
	keep := url.Values{}
	for _, k := range []string{"q", "source", "connection", "module", "operation", "record", "status", "since", "until", "limit"} {
		if s := vals.Get(k); s != "" {
			keep.Set(k, s)
		}
	}
	if s := vals.Get("outcome"); s != "" && keep.Get("status") == "" {
		keep.Set("status", s)
	}
	v.Encoded = keep.Encode()
	v.FilterOpen = v.Encoded != ""
	link := func(k string, seq uint64) string {
		u := url.Values{}
		for kk, vv := range keep {
			u[kk] = vv
		}
		u.Set(k, strconv.FormatUint(seq, 10))
		return v.Prefix + "/events?" + u.Encode()
	}
	if res.Older != 0 {
		v.OlderURL = link("before", res.Older)
	}
	if res.Newer != 0 {
		v.NewerURL = link("after", res.Newer)
	}
	v.Live = q.Before == 0 && q.After == 0
	return v, http.StatusOK
}

func (c *Console) pageEvents(w http.ResponseWriter, r *http.Request) {
	v, status := c.eventsData(r)
	c.render(w, status, "events", v)
}

// pageEventRows renders the list's rows alone: the live page refreshes
// them when the server-sent stream says something changed.
func (c *Console) pageEventRows(w http.ResponseWriter, r *http.Request) {
	v, status := c.eventsData(r)
	c.renderTemplate(w, status, "events", "rows", v)
}

type eventView struct {
	base
	D      *EventDetail
	Notice string
}

func (c *Console) pageEvent(w http.ResponseWriter, r *http.Request) {
	d, err := c.Event(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrEventNotFound) {
		c.fail(w, r, http.StatusNotFound, "No event "+r.PathValue("id")+" in the index or the dead letters.")
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	c.render(w, http.StatusOK, "event", eventView{base: c.base(r, "Event "+d.Event.ID), D: d, Notice: notice(r.URL.Query())})
}

// notice turns the outcome of a POST, passed in the redirect, into a line.
func notice(v url.Values) string {
	switch {
	case v.Get("replayed") != "":
		n := v.Get("replayed")
		msg := "Replayed " + n + " event(s): they were published again and run with the current rules; steps already done are not repeated."
		if f := v.Get("failed"); f != "" && f != "0" {
			msg += " " + f + " could not be replayed."
		}
		return msg
	case v.Get("resolved") != "":
		return "Decision recorded (" + v.Get("resolved") + ") and the event replayed."
	case v.Get("error") != "":
		return "Failed: " + v.Get("error")
	}
	return ""
}

type deadLettersView struct {
	base
	Filter  DeadLetterFilter
	List    []DeadLetterView
	Total   uint64
	Notice  string
	Error   string
	Encoded string
}

func (c *Console) pageDeadLetters(w http.ResponseWriter, r *http.Request) {
	f := deadLetterFilter(r.URL.Query())
	v := deadLettersView{base: c.base(r, "Dead letters"), Filter: f, Notice: notice(r.URL.Query()), List: []DeadLetterView{}}
	list, total, err := c.DeadLetters(r.Context(), f)
	if err != nil {
		v.Error = err.Error()
	}
	v.List, v.Total = list, total
	c.render(w, http.StatusOK, "deadletters", v)
}

type previewView struct {
	base
	Preview ReplayPreview
	Sel     Selection
	Changed string
}

func selectionFromForm(r *http.Request) Selection {
	sel := Selection{IDs: r.PostForm["id"], All: r.PostFormValue("all") == "1"}
	sel.Filter = deadLetterFilter(r.PostForm)
	return sel
}

// pagePreview shows what a replay would send ("This will replay N
// events") and asks to confirm; nothing is sent yet.
func (c *Console) pagePreview(w http.ResponseWriter, r *http.Request) {
	sel := selectionFromForm(r)
	p, err := c.PreviewReplay(r.Context(), sel)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	c.render(w, http.StatusOK, "preview", previewView{base: c.base(r, "Replay preview"), Preview: p, Sel: sel})
}

// pageReplay replays a previewed selection: the exact ids the preview
// listed, and only if they still count what the preview said.
func (c *Console) pageReplay(w http.ResponseWriter, r *http.Request) {
	expect, err := strconv.Atoi(r.PostFormValue("expect"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "expect: the count the preview showed is missing")
		return
	}
	sel := Selection{IDs: r.PostForm["id"]}
	res, p, err := c.Replay(r.Context(), sel, expect)
	if errors.Is(err, ErrPreviewChanged) {
		c.render(w, http.StatusConflict, "preview", previewView{base: c.base(r, "Replay preview"), Preview: p, Sel: sel, Changed: err.Error()})
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	u := url.Values{"replayed": {strconv.Itoa(len(res.Replayed))}, "failed": {strconv.Itoa(len(res.Failed))}}
	http.Redirect(w, r, strings.TrimSuffix(Prefix, "/")+"/dead-letters?"+u.Encode(), http.StatusSeeOther)
}

func (c *Console) pageReplayOne(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	u := url.Values{"replayed": {"1"}}
	if err := c.ReplayOne(r.Context(), id); err != nil {
		u = url.Values{"error": {err.Error()}}
	}
	http.Redirect(w, r, strings.TrimSuffix(Prefix, "/")+"/events/"+url.PathEscape(id)+"?"+u.Encode(), http.StatusSeeOther)
}

func (c *Console) pageResolve(w http.ResponseWriter, r *http.Request) {
	id, decision := r.PathValue("id"), r.PostFormValue("decision")
	u := url.Values{"resolved": {decision}}
	if err := c.Resolve(r.Context(), id, decision); err != nil {
		u = url.Values{"error": {err.Error()}}
	}
	http.Redirect(w, r, strings.TrimSuffix(Prefix, "/")+"/events/"+url.PathEscape(id)+"?"+u.Encode(), http.StatusSeeOther)
}

type healthView struct {
	base
	H *Health
}

func (c *Console) pageHealth(w http.ResponseWriter, r *http.Request) {
	c.render(w, http.StatusOK, "health", healthView{base: c.base(r, "Health"), H: c.Health(r.Context())})
}
