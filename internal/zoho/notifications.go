package zoho

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// channelExpiryLayout: Zoho rejects fractional seconds in channel_expiry (G11).
const channelExpiryLayout = "2006-01-02T15:04:05-07:00"

// Channel is a CRM notification ("watch") subscription (§5).
type Channel struct {
	// ChannelID is a number chosen by the caller; Zoho echoes it as a string.
	ChannelID string
	// Events are "{Module}.{create|edit|delete|all}".
	Events    []string
	NotifyURL string
	// Token (≤ 50 chars) is echoed in every callback for verification.
	Token string
	// ChannelExpiry: zero = omit (Zoho default 1 h); max 1 week ahead.
	ChannelExpiry time.Time
	// ReturnAffectedFieldValues / NotifyOnRelatedAction: nil = omit.
	ReturnAffectedFieldValues *bool
	NotifyOnRelatedAction     *bool
	// NotificationCondition is passed through as is.
	NotificationCondition []map[string]any
	// Fields is passed through as is.
	Fields map[string]any
	// DeleteEvents sends _delete_events=true (DisableEvents uses it).
	DeleteEvents bool

	// Read-only, filled by ListChannels.
	ResourceURI, ResourceID, ResourceName string
}

// MarshalJSON renders the channel the way Zoho expects (channel_id as a number).
func (c Channel) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if c.ChannelID != "" {
		if _, err := strconv.ParseInt(c.ChannelID, 10, 64); err == nil {
			m["channel_id"] = json.Number(c.ChannelID)
		} else {
			m["channel_id"] = c.ChannelID
		}
	}
	if c.Events != nil {
		m["events"] = c.Events
	}
	if c.NotifyURL != "" {
		m["notify_url"] = c.NotifyURL
	}
	if c.Token != "" {
		m["token"] = c.Token
	}
	if !c.ChannelExpiry.IsZero() {
		m["channel_expiry"] = c.ChannelExpiry.Truncate(time.Second).Format(channelExpiryLayout)
	}
	if c.ReturnAffectedFieldValues != nil {
		m["return_affected_field_values"] = *c.ReturnAffectedFieldValues
	}
	if c.NotifyOnRelatedAction != nil {
		m["notify_on_related_action"] = *c.NotifyOnRelatedAction
	}
	if c.NotificationCondition != nil {
		m["notification_condition"] = c.NotificationCondition
	}
	if c.Fields != nil {
		m["fields"] = c.Fields
	}
	if c.DeleteEvents {
		m["_delete_events"] = true
	}
	return json.Marshal(m)
}

func channelFromMap(m map[string]any) Channel {
	c := Channel{ChannelID: idString(m["channel_id"]), NotifyURL: str(m["notify_url"]), Token: str(m["token"]),
		ResourceURI: str(m["resource_uri"]), ResourceID: idString(m["resource_id"]), ResourceName: str(m["resource_name"])}
	if evs, ok := m["events"].([]any); ok {
		for _, e := range evs {
			c.Events = append(c.Events, str(e))
		}
	}
	if s := str(m["channel_expiry"]); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			c.ChannelExpiry = t
		}
	}
	if b, ok := m["return_affected_field_values"].(bool); ok {
		c.ReturnAffectedFieldValues = &b
	}
	if b, ok := m["notify_on_related_action"].(bool); ok {
		c.NotifyOnRelatedAction = &b
	}
	if nc, ok := m["notification_condition"].([]any); ok {
		for _, x := range nc {
			if xm, ok := x.(map[string]any); ok {
				c.NotificationCondition = append(c.NotificationCondition, xm)
			}
		}
	}
	c.Fields, _ = m["fields"].(map[string]any)
	return c
}

const watchPath = "actions/watch"

// watchWrite sends {"watch": chs} and returns one result per channel item;
// per-item failures (also inside a 400) come back as results + *BatchError.
func (s *CRMService) watchWrite(ctx context.Context, method string, chs []Channel) ([]RecordResult, *Response, error) {
	if len(chs) == 0 {
		return nil, nil, &InputError{Input: "watch", Reason: "no channel given"}
	}
	b, err := jsonBody(map[string]any{"watch": chs})
	if err != nil {
		return nil, nil, err
	}
	res, err := s.c.do(ctx, &request{api: APICRM, method: method, path: watchPath, body: b, contentType: "application/json"})
	return watchResults(res, err, method)
}

func watchResults(res *rawResult, err error, method string) ([]RecordResult, *Response, error) {
	var items []map[string]any
	ok := false
	if res != nil && (err == nil || res.status == http.StatusBadRequest || res.status == http.StatusAccepted) {
		items, ok = decodeItems(res.body, "watch")
	}
	if err != nil && !ok {
		return nil, res.response(), err
	}
	if !ok {
		return nil, res.response(), &Error{API: APICRM, Method: method, Path: watchPath, HTTPStatus: res.status, Code: "UNEXPECTED_RESPONSE", Message: "no watch[] in answer"}
	}
	out := make([]RecordResult, 0, len(items))
	for i, it := range items {
		r := resultFromMap(i, it)
		if r.ID == "" && r.Details != nil {
			r.ID = idString(r.Details["channel_id"])
		}
		out = append(out, r)
	}
	return out, res.response(), batchResult(APICRM, out)
}

// EnableChannel subscribes a channel (POST /actions/watch).
func (s *CRMService) EnableChannel(ctx context.Context, ch Channel) ([]RecordResult, *Response, error) {
	if ch.ChannelID == "" || len(ch.Events) == 0 || ch.NotifyURL == "" {
		return nil, nil, &InputError{Input: "channel", Reason: "channel_id, events and notify_url are required"}
	}
	if len(ch.Token) > 50 {
		return nil, nil, &InputError{Input: "token", Reason: "at most 50 characters"}
	}
	return s.watchWrite(ctx, http.MethodPost, []Channel{ch})
}

// UpdateChannel replaces a subscription entirely (PUT): unspecified keys are removed.
func (s *CRMService) UpdateChannel(ctx context.Context, ch Channel) ([]RecordResult, *Response, error) {
	if ch.ChannelID == "" {
		return nil, nil, &InputError{Input: "channel_id", Reason: "required"}
	}
	return s.watchWrite(ctx, http.MethodPut, []Channel{ch})
}

// PatchChannel changes only the given keys (PATCH), e.g. renewing
// channel_expiry. Resend Events and Token: Zoho nulls the token otherwise (G11).
func (s *CRMService) PatchChannel(ctx context.Context, ch Channel) ([]RecordResult, *Response, error) {
	if ch.ChannelID == "" {
		return nil, nil, &InputError{Input: "channel_id", Reason: "required"}
	}
	return s.watchWrite(ctx, http.MethodPatch, []Channel{ch})
}

// DisableEvents removes some events from a channel (PATCH with _delete_events).
func (s *CRMService) DisableEvents(ctx context.Context, channelID string, events []string) ([]RecordResult, *Response, error) {
	if channelID == "" || len(events) == 0 {
		return nil, nil, &InputError{Input: "events", Reason: "channel_id and events are required"}
	}
	return s.watchWrite(ctx, http.MethodPatch, []Channel{{ChannelID: channelID, Events: events, DeleteEvents: true}})
}

// DisableChannels unsubscribes channels (DELETE ?channel_ids=).
func (s *CRMService) DisableChannels(ctx context.Context, channelIDs []string) ([]RecordResult, *Response, error) {
	if len(channelIDs) == 0 {
		return nil, nil, &InputError{Input: "channel_ids", Reason: "required"}
	}
	res, err := s.c.do(ctx, &request{api: APICRM, method: http.MethodDelete, path: watchPath, query: url.Values{"channel_ids": {strings.Join(channelIDs, ",")}}})
	return watchResults(res, err, http.MethodDelete)
}

// ChannelListOptions filters ListChannels.
type ChannelListOptions struct {
	ChannelID, Module string
	Page, PerPage     int
}

// ListChannels returns subscription details (one page; 204 → none).
func (s *CRMService) ListChannels(ctx context.Context, opts *ChannelListOptions) ([]Channel, *Response, error) {
	q := url.Values{}
	if opts != nil {
		if opts.ChannelID != "" {
			q.Set("channel_id", opts.ChannelID)
		}
		if opts.Module != "" {
			q.Set("module", opts.Module)
		}
		if opts.Page > 0 {
			q.Set("page", strconv.Itoa(opts.Page))
		}
		if opts.PerPage > 0 {
			q.Set("per_page", strconv.Itoa(opts.PerPage))
		}
	}
	res, err := s.c.do(ctx, &request{api: APICRM, method: http.MethodGet, path: watchPath, query: q})
	if err != nil {
		return nil, res.response(), err
	}
	resp := res.response()
	resp.Info = &PageInfo{}
	if res.status == http.StatusNoContent {
		return nil, resp, nil
	}
	var env struct {
		Watch []map[string]any `json:"watch"`
		Info  PageInfo         `json:"info"`
	}
	if err := decodeJSON(res.body, &env); err != nil {
		return nil, resp, fmt.Errorf("zoho crm: list channels: %w", err)
	}
	resp.Info = &env.Info
	out := make([]Channel, 0, len(env.Watch))
	for _, w := range env.Watch {
		out = append(out, channelFromMap(w))
	}
	return out, resp, nil
}
