package zohotest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Channel is a CRM notification channel (§5) as the fake stores it.
type Channel struct {
	ChannelID                 string
	Events                    []string
	NotifyURL                 string
	Token                     string // "" when Zoho holds null (e.g. after a PATCH without token)
	HasToken                  bool
	Expiry                    time.Time
	ReturnAffectedFieldValues bool
	NotifyOnRelatedAction     bool
}

// Delivery is one notification callback the fake POSTed (or tried to).
type Delivery struct {
	ChannelID string
	URL       string
	Body      []byte
	Status    int    // 0 when the request failed
	Err       string // transport error, if any
	At        time.Time
}

// WebhookFailure is an entry of the (UNCONFIRMED) workflow-webhook failure log, see RecordWebhookFailure.
type WebhookFailure struct {
	WebhookID   string
	WebhookName string
	Module      string
	RecordID    string
	URL         string
	StatusCode  int
	Reason      string
	At          time.Time
}

type channel struct {
	id         string
	events     []string
	notifyURL  string
	token      *string
	expiry     time.Time
	affected   bool
	related    bool
	conditions any
}

type watchState struct {
	channels map[string]*channel
}

func (w *watchState) init() { w.channels = map[string]*channel{} }

var (
	eventRe  = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_]*)\.(create|edit|delete|all)$`)
	expiryRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$`)
)

const maxChannelLife = 7 * 24 * time.Hour

func (s *Server) liveChannel(id string) *channel {
	c, ok := s.watch.channels[id]
	if !ok {
		return nil
	}
	if !s.now().Before(c.expiry) {
		delete(s.watch.channels, id) // expired channels disappear (§5.8)
		return nil
	}
	return c
}

func (s *Server) liveChannels() []*channel {
	ids := make([]string, 0, len(s.watch.channels))
	for id := range s.watch.channels {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmpID)
	var out []*channel
	for _, id := range ids {
		if c := s.liveChannel(id); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// Channels returns the live notification channels, sorted by channel id.
func (s *Server) Channels() []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Channel
	for _, c := range s.liveChannels() {
		ch := Channel{ChannelID: c.id, Events: slices.Clone(c.events), NotifyURL: c.notifyURL, Expiry: c.expiry,
			ReturnAffectedFieldValues: c.affected, NotifyOnRelatedAction: c.related}
		if c.token != nil {
			ch.Token, ch.HasToken = *c.token, true
		}
		out = append(out, ch)
	}
	return out
}

// DropChannel forgets a channel without telling anyone, as Zoho sometimes does (§5.8).
func (s *Server) DropChannel(channelID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watch.channels, channelID)
}

// ---- HTTP ------------------------------------------------------------------------------------------------------

func (s *Server) serveWatch(rq *request) *response {
	switch rq.r.Method {
	case http.MethodGet:
		return s.watchGet(rq)
	case http.MethodPost:
		return s.watchWrite(rq, "enable")
	case http.MethodPut:
		return s.watchWrite(rq, "replace")
	case http.MethodPatch:
		return s.watchWrite(rq, "patch")
	case http.MethodDelete:
		return s.watchDelete(rq)
	}
	return badMethod()
}

func watchItemErr(code, msg string, idx int, key string) map[string]any {
	return crmErr(code, msg, map[string]any{"api_name": key, "json_path": fmt.Sprintf("$.watch[%d].%s", idx, key)})
}

func channelIDOf(v any) (string, bool) {
	switch t := v.(type) {
	case float64:
		if t <= 0 || t != float64(int64(t)) {
			return "", false
		}
		return strconv.FormatInt(int64(t), 10), true
	case string:
		if validID.MatchString(t) {
			return t, true
		}
	}
	return "", false
}

func (s *Server) moduleURI(module string) string { return s.URL() + "/crm/v8/" + module }

// eventDetails is the per-module "events" list Zoho answers an enable/update with.
func (s *Server) eventDetails(c *channel) []any {
	var out []any
	seen := map[string]bool{}
	for _, e := range c.events {
		mod := strings.SplitN(e, ".", 2)[0]
		if seen[mod] {
			continue
		}
		seen[mod] = true
		m := s.crm.modules[mod]
		out = append(out, map[string]any{"channel_expiry": c.expiry.Format(crmTimeLayout), "resource_uri": s.moduleURI(mod),
			"resource_id": m.id, "resource_name": mod, "channel_id": c.id, "notification_condition": []any{}})
	}
	return out
}

func (s *Server) watchWrite(rq *request, mode string) *response {
	var body struct {
		Watch []map[string]any `json:"watch"`
	}
	if err := json.Unmarshal(rq.body, &body); err != nil {
		return crmErrResp(http.StatusBadRequest, "INVALID_DATA", "body", map[string]any{"reason": "body is not valid JSON"})
	}
	if len(body.Watch) == 0 {
		return crmErrResp(http.StatusBadRequest, "MANDATORY_NOT_FOUND", "required field not found", map[string]any{"api_name": "watch", "json_path": "$.watch"})
	}
	var results []any
	ok := 0
	for i, w := range body.Watch {
		item := s.watchOne(i, w, mode)
		if item["status"] == "success" {
			ok++
		}
		results = append(results, item)
	}
	status := http.StatusOK
	if mode == "enable" {
		status = http.StatusCreated
	}
	switch {
	case ok == 0:
		status = http.StatusBadRequest
	case ok < len(results):
		status = http.StatusMultiStatus
	}
	return jsonResp(status, map[string]any{"watch": results})
}

func (s *Server) watchOne(i int, w map[string]any, mode string) map[string]any {
	if w["channel_id"] == nil {
		return watchItemErr("MANDATORY_NOT_FOUND", "required field not found", i, "channel_id")
	}
	id, valid := channelIDOf(w["channel_id"])
	if !valid {
		return watchItemErr("INVALID_DATA", "invalid data", i, "channel_id")
	}
	existing := s.liveChannel(id)
	if mode != "enable" && existing == nil {
		return crmErr("NOT_SUBSCRIBED", "Not subscribed for actions-watch of the given channel", map[string]any{"channel_id": id})
	}
	// Events: mandatory except for a PATCH that changes other keys.
	var events []string
	if raw, given := w["events"]; given {
		list, isList := raw.([]any)
		if !isList || len(list) == 0 {
			return watchItemErr("INVALID_DATA", "invalid data", i, "events")
		}
		for _, e := range list {
			es, _ := e.(string)
			m := eventRe.FindStringSubmatch(es)
			if m == nil {
				return watchItemErr("INVALID_DATA", "invalid data", i, "events")
			}
			if _, known := s.crm.modules[m[1]]; !known {
				return watchItemErr("INVALID_DATA", "invalid data", i, "events")
			}
			events = append(events, es)
		}
	} else if mode != "patch" {
		return watchItemErr("MANDATORY_NOT_FOUND", "required field not found", i, "events")
	}
	if mode == "patch" && w["_delete_events"] == true {
		// §5.5: remove the listed events; nothing else changes.
		existing.events = slices.DeleteFunc(existing.events, func(e string) bool { return slices.Contains(events, e) })
		details := map[string]any{"events": s.eventDetails(existing), "channel_id": id}
		if len(existing.events) == 0 {
			delete(s.watch.channels, id)
			details["events"] = []any{}
		}
		return map[string]any{"code": "SUCCESS", "details": details, "message": "Successfully removed the subscribe details", "status": "success"}
	}
	var notifyURL string
	if raw, given := w["notify_url"]; given {
		u, isStr := raw.(string)
		pu, err := url.Parse(u)
		if !isStr || err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return watchItemErr("INVALID_DATA", "invalid data", i, "notify_url")
		}
		notifyURL = u
	} else if mode != "patch" {
		return watchItemErr("MANDATORY_NOT_FOUND", "required field not found", i, "notify_url")
	}
	var token *string
	if raw, given := w["token"]; given && raw != nil {
		t, isStr := raw.(string)
		if !isStr || len(t) > 50 {
			return watchItemErr("INVALID_DATA", "invalid data", i, "token")
		}
		token = &t
	}
	now := s.now()
	expiry := now.Add(time.Hour)
	if raw, given := w["channel_expiry"]; given && raw != nil {
		es, _ := raw.(string)
		if !expiryRe.MatchString(es) { // also rejects milliseconds, as Zoho does (§5.1)
			return watchItemErr("INVALID_DATA", "invalid data", i, "channel_expiry")
		}
		t, err := time.Parse(time.RFC3339, es)
		if err != nil || !t.After(now) {
			return watchItemErr("INVALID_DATA", "invalid data", i, "channel_expiry")
		}
		if !t.After(now.Add(maxChannelLife)) {
			expiry = t
		} // beyond one week Zoho falls back to the 1 h default (§5.1)
	} else if mode == "patch" && existing != nil {
		expiry = existing.expiry
	}
	boolOr := func(key string, def bool) bool {
		if b, isBool := w[key].(bool); isBool {
			return b
		}
		return def
	}
	var c *channel
	switch mode {
	case "patch":
		c = existing
		if events != nil {
			c.events = events
		}
		if notifyURL != "" {
			c.notifyURL = notifyURL
		}
		c.token = token // a PATCH without token nulls it (§5.4, PD-C)
		c.expiry = expiry
		c.affected = boolOr("return_affected_field_values", c.affected)
		c.related = boolOr("notify_on_related_action", c.related)
		if nc, given := w["notification_condition"]; given {
			c.conditions = nc
		}
	default: // enable and replace (PUT replaces everything, §5.3)
		c = &channel{id: id, events: events, notifyURL: notifyURL, token: token, expiry: expiry,
			affected: boolOr("return_affected_field_values", false), related: boolOr("notify_on_related_action", true),
			conditions: w["notification_condition"]}
		s.watch.channels[id] = c
	}
	msg := "Successfully updated the subscribe details"
	if mode == "enable" {
		msg = "Successfully subscribed for actions-watch of the given module"
	}
	return map[string]any{"code": "SUCCESS", "details": map[string]any{"events": s.eventDetails(c)}, "message": msg, "status": "success"}
}

func (s *Server) watchGet(rq *request) *response {
	perPage, page, bad := rq.paging()
	if bad != nil {
		return bad
	}
	var items []any
	for _, c := range s.liveChannels() {
		if id := rq.query("channel_id"); id != "" && id != c.id {
			continue
		}
		mod := strings.SplitN(c.events[0], ".", 2)[0]
		if want := rq.query("module"); want != "" {
			found := false
			for _, e := range c.events {
				if strings.HasPrefix(e, want+".") {
					found, mod = true, want
					break
				}
			}
			if !found {
				continue
			}
		}
		item := map[string]any{"channel_id": c.id, "events": slices.Clone(c.events), "notify_url": c.notifyURL,
			"channel_expiry": c.expiry.Format(crmTimeLayout), "resource_uri": s.moduleURI(mod), "resource_id": s.crm.modules[mod].id,
			"resource_name": mod, "return_affected_field_values": c.affected, "notify_on_related_action": c.related, "fields": nil}
		if c.token != nil {
			item["token"] = *c.token
		} else {
			item["token"] = nil
		}
		if c.conditions != nil {
			item["notification_condition"] = deepCopy(c.conditions)
		}
		items = append(items, item)
	}
	off := (page - 1) * perPage
	if off >= len(items) {
		return emptyResp(http.StatusNoContent)
	}
	end := min(off+perPage, len(items))
	return jsonResp(http.StatusOK, map[string]any{"watch": items[off:end], "info": map[string]any{"per_page": perPage,
		"count": end - off, "page": page, "more_records": end < len(items)}})
}

func (s *Server) watchDelete(rq *request) *response {
	ids := splitList(rq.query("channel_ids"))
	if len(ids) == 0 {
		return missingParam("channel_ids")
	}
	var results []any
	ok := 0
	for _, id := range ids {
		c := s.liveChannel(id)
		if c == nil {
			results = append(results, crmErr("NOT_SUBSCRIBED", "Not subscribed for actions-watch of the given channel", map[string]any{"channel_id": id}))
			continue
		}
		ok++
		for _, ev := range s.eventDetails(c) {
			e := ev.(map[string]any)
			results = append(results, map[string]any{"code": "SUCCESS", "details": map[string]any{"resource_uri": e["resource_uri"],
				"resource_id": e["resource_id"], "channel_id": id}, "message": "Successfully un-subscribed from actions-watch", "status": "success"})
		}
		delete(s.watch.channels, id)
	}
	status := http.StatusOK
	switch {
	case ok == 0:
		status = http.StatusBadRequest
	case ok < len(ids):
		status = http.StatusMultiStatus
	}
	return jsonResp(status, map[string]any{"watch": results})
}

// ---- callbacks -------------------------------------------------------------------------------------------------

// emit queues §5.7 callbacks for a CRM write made through the API; op is insert, update or delete. s.mu is held.
func (s *Server) emit(module, op string, ids []string, affected map[string][]string, values map[string]map[string]any) {
	if !s.cfg.notifications {
		return
	}
	want := map[string]string{"insert": "create", "update": "edit", "delete": "delete"}[op]
	now := s.now()
	for _, c := range s.liveChannels() {
		if !slices.Contains(c.events, module+"."+want) && !slices.Contains(c.events, module+".all") {
			continue
		}
		qp := map[string]any{}
		if u, err := url.Parse(c.notifyURL); err == nil {
			for k, v := range u.Query() {
				qp[k] = v[0]
			}
		}
		body := map[string]any{"server_time": now.UnixMilli(), "query_params": qp, "module": module,
			"resource_uri": s.URL() + "/crm/v2/" + module, // Zoho's samples say v2 even on v8 (§5.7)
			"ids":          slices.Clone(ids), "affected_fields": []any{}, "operation": op, "channel_id": c.id, "token": nil}
		if c.token != nil {
			body["token"] = *c.token
		}
		if op == "update" {
			var af, av []any
			for _, id := range ids {
				af = append(af, map[string]any{id: affected[id]})
				av = append(av, map[string]any{"record_id": id, "values": deepCopy(values[id])})
			}
			body["affected_fields"] = af
			if c.affected {
				body["affected_values"] = av
			}
		}
		b, err := json.Marshal(body)
		if err != nil {
			continue
		}
		s.notifier.enqueue(job{channelID: c.id, url: c.notifyURL, body: b, at: now})
	}
}

type job struct {
	channelID, url string
	body           []byte
	at             time.Time
}

// notifier delivers callbacks one at a time, in order, on its own goroutine: Zoho's callbacks are asynchronous
// and the receiver must never be called with the fake's lock held.
type notifier struct {
	mu         sync.Mutex
	cond       *sync.Cond
	queue      []job
	busy       bool
	closed     bool
	started    bool
	done       chan struct{}
	client     *http.Client
	log        *slog.Logger
	deliveries []Delivery
}

func newNotifier(log *slog.Logger) *notifier {
	n := &notifier{done: make(chan struct{}), client: &http.Client{Timeout: 5 * time.Second}, log: log}
	n.cond = sync.NewCond(&n.mu)
	return n
}

func (n *notifier) enqueue(j job) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if !n.started {
		n.started = true
		go n.run()
	}
	n.queue = append(n.queue, j)
	n.cond.Broadcast()
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		n.mu.Lock()
		for len(n.queue) == 0 && !n.closed {
			n.cond.Wait()
		}
		if n.closed {
			n.queue = nil
			n.cond.Broadcast()
			n.mu.Unlock()
			return
		}
		j := n.queue[0]
		n.queue = n.queue[1:]
		n.busy = true
		n.mu.Unlock()

		d := Delivery{ChannelID: j.channelID, URL: j.url, Body: j.body, At: j.at}
		resp, err := n.client.Post(j.url, "application/json", bytes.NewReader(j.body))
		if err != nil {
			// The notify_url's query may carry a shared secret (§5.7): keep the URL out of errors and logs.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			d.Err = err.Error()
			n.log.Warn("zohotest: notification delivery failed", "channel_id", j.channelID, "err", err)
		} else {
			d.Status = resp.StatusCode
			_ = resp.Body.Close()
		}
		n.mu.Lock()
		n.busy = false
		n.deliveries = append(n.deliveries, d)
		n.cond.Broadcast()
		n.mu.Unlock()
	}
}

// flush waits until every queued callback has been attempted.
func (n *notifier) flush() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for (len(n.queue) > 0 || n.busy) && !n.closed {
		n.cond.Wait()
	}
}

func (n *notifier) close() {
	n.mu.Lock()
	n.closed = true
	started := n.started
	n.cond.Broadcast()
	n.mu.Unlock()
	if started {
		<-n.done
	}
}

// FlushNotifications blocks until every queued notification callback has been attempted.
func (s *Server) FlushNotifications() { s.notifier.flush() }

// Deliveries returns the notification callbacks attempted so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.notifier.mu.Lock()
	defer s.notifier.mu.Unlock()
	return slices.Clone(s.notifier.deliveries)
}

// ---- webhook failure log (UNCONFIRMED endpoint, §6) -------------------------------------------------------------

// RecordWebhookFailure adds an entry to GET /crm/v8/settings/automation/webhook_failures.
func (s *Server) RecordWebhookFailure(f WebhookFailure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.At.IsZero() {
		f.At = s.now()
	}
	s.failures = append(s.failures, f)
}

func (s *Server) webhookFailures(rq *request) *response {
	var from, to time.Time
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := rq.query(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return invalidParam(p.name)
			}
			*p.dst = t
		}
	}
	perPage, page, bad := rq.paging()
	if bad != nil {
		return bad
	}
	var items []any
	for i, f := range s.failures {
		if w := rq.query("webhook_id"); w != "" && w != f.WebhookID {
			continue
		}
		if (!from.IsZero() && f.At.Before(from)) || (!to.IsZero() && f.At.After(to)) {
			continue
		}
		items = append(items, map[string]any{"id": strconv.Itoa(5725767000003000000 + i), "webhook": map[string]any{"id": f.WebhookID, "name": f.WebhookName},
			"module": map[string]any{"api_name": f.Module}, "record_id": f.RecordID, "url": f.URL, "response_code": f.StatusCode,
			"failure_reason": f.Reason, "failed_time": f.At.Format(crmTimeLayout)})
	}
	off := (page - 1) * perPage
	if off >= len(items) {
		return emptyResp(http.StatusNoContent)
	}
	end := min(off+perPage, len(items))
	return jsonResp(http.StatusOK, map[string]any{"webhook_failures": items[off:end], "info": map[string]any{"per_page": perPage,
		"count": end - off, "page": page, "more_records": end < len(items)}})
}
