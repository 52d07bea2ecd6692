package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher keeps the current Set of a rules file and reloads it when the file
// changes. An invalid file keeps the last good set.
type Watcher struct {
	path     string
	cur      atomic.Pointer[Set]
	log      *slog.Logger
	debounce time.Duration
	onReload []func(*Set, error)
	loadOpts []Option

	// mu serializes reloads (Run's timer and direct Reload calls), so that
	// failing describes the last attempt.
	mu sync.Mutex
	// failing: the last reload attempt failed. The next good load is then
	// reported even when it is the version still in force (a broken save
	// fixed by restoring the old text): the operator who saw the failure
	// must see the recovery, and result="ok" must count it.
	failing bool
}

// WatcherOption configures a Watcher.
type WatcherOption func(*Watcher)

// WithLogger logs reloads and load problems (default: discard).
func WithLogger(l *slog.Logger) WatcherOption {
	return func(w *Watcher) {
		if l != nil {
			w.log = l
		}
	}
}

// WithDebounce sets how long the watcher waits after the last file event
// before reloading (default 150ms): editors write a file in several steps.
func WithDebounce(d time.Duration) WatcherOption {
	return func(w *Watcher) {
		if d > 0 {
			w.debounce = d
		}
	}
}

// OnReload registers a callback run after each reload attempt that found a
// change: set is the new set (nil on error), err the *LoadError or read
// error. The worker uses it for metrics.
func OnReload(f func(set *Set, err error)) WatcherOption {
	return func(w *Watcher) { w.onReload = append(w.onReload, f) }
}

// WithLoadOptions passes options to every Load.
func WithLoadOptions(opts ...Option) WatcherOption {
	return func(w *Watcher) { w.loadOpts = append(w.loadOpts, opts...) }
}

// NewWatcher returns a watcher of path starting from initial (which may be
// nil: then Run loads the file first).
func NewWatcher(path string, initial *Set, opts ...WatcherOption) *Watcher {
	w := &Watcher{path: path, log: slog.New(slog.DiscardHandler), debounce: 150 * time.Millisecond}
	for _, o := range opts {
		o(w)
	}
	if initial != nil {
		w.cur.Store(initial)
	}
	return w
}

// Current returns the current set (nil only before a first good load).
func (w *Watcher) Current() *Set { return w.cur.Load() }

// Reload loads the file now. It swaps the set when the file is valid and
// different, and keeps the old one otherwise. Each attempt is logged once
// here, naming the file: a failure with every problem, a success as
// "rules reloaded" with the version (also when a fixed file restores the
// version in force); a valid file identical to the current set is silent.
func (w *Watcher) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	set, err := Load(w.path, w.loadOpts...)
	if err != nil {
		w.failing = true
		var le *LoadError
		if errors.As(err, &le) {
			w.log.Error("rules reload failed; keeping the previous rules", "file", w.path, "problems", len(le.Problems), "errors", le.Error())
		} else {
			w.log.Error("rules reload failed; keeping the previous rules", "file", w.path, "err", err)
		}
		w.notify(nil, err)
		return err
	}
	old := w.cur.Load()
	if old != nil && old.Version() == set.Version() && !w.failing {
		return nil
	}
	recovered := w.failing
	w.failing = false
	if old == nil || old.Version() != set.Version() {
		w.cur.Store(set)
	} else {
		set = old // same text: keep the set in force (callers may compare it)
	}
	w.log.Info("rules reloaded", "file", w.path, "version", set.Version(), "rules", len(set.rules), "after_failure", recovered)
	w.notify(set, nil)
	return nil
}

func (w *Watcher) notify(set *Set, err error) {
	for _, f := range w.onReload {
		f(set, err)
	}
}

// Run watches the file's directory until ctx ends. The directory, not the
// file, is watched: editors and Kubernetes ConfigMaps replace files by
// rename, which would end a watch on the file itself.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("rules watcher: %w", err)
	}
	defer fw.Close()
	dir, base := filepath.Split(filepath.Clean(w.path))
	if dir == "" {
		dir = "."
	}
	if err := fw.Add(dir); err != nil {
		return fmt.Errorf("rules watcher: watch %s: %w", dir, err)
	}
	if w.cur.Load() == nil {
		_ = w.Reload() // logged and reported through OnReload
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			name := filepath.Base(ev.Name)
			// "..data" is the symlink a ConfigMap mount swaps atomically.
			if name != base && !strings.HasPrefix(name, "..") {
				continue
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(w.debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("rules watcher error", "err", err)
		case <-timer.C:
			_ = w.Reload()
		}
	}
}
