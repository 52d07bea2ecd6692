package app

import (
	"fmt"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/receiver"
)

// receiverSources builds the receiver's token verifier and hooks from the
// flags and the optional configuration file, resolving secrets.
func receiverSources(f *config.File, flagTokens []string, getenv func(string) string) (*receiver.StaticTokens, map[string]receiver.HookConfig, map[string]receiver.HookConfig, error) {
	tokens := receiver.NewStaticTokens(flagTokens)
	if f == nil {
		return tokens, nil, nil, nil
	}
	for name, c := range f.Connections {
		for i, s := range c.CRMNotifyTokens {
			v, err := s.Resolve(getenv)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("connections.%s.crm_notify_tokens[%d]: %w", name, i, err)
			}
			tokens.Add(name, v)
		}
	}
	convert := func(kind string, in map[string]config.Hook) (map[string]receiver.HookConfig, error) {
		out := make(map[string]receiver.HookConfig, len(in))
		for name, h := range in {
			secret, err := h.Secret.Resolve(getenv)
			if err != nil {
				return nil, fmt.Errorf("hooks.%s.%s.secret: %w", kind, name, err)
			}
			out[name] = receiver.HookConfig{
				Connection: h.Connection, Secret: secret, SecretHeader: h.SecretHeader, SecretQuery: h.SecretQuery,
				Signature: h.Signature, Module: h.Module, ModuleField: h.ModuleField, Operation: h.Operation,
				OperationField: h.OperationField, RecordIDField: h.RecordIDField,
			}
		}
		return out, nil
	}
	wf, err := convert("crm_workflow", f.Hooks.CRMWorkflow)
	if err != nil {
		return nil, nil, nil, err
	}
	books, err := convert("books", f.Hooks.Books)
	if err != nil {
		return nil, nil, nil, err
	}
	return tokens, wf, books, nil
}
