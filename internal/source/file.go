package source

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/envoy-rls/envoy-rls/internal/reload"
	"github.com/envoy-rls/envoy-rls/pkg/descriptors"
)

// File is the file source: a YAML file, or a directory of *.yaml and
// *.yml files (a mounted ConfigMap included), read with
// descriptors.Load. It loads again when the files change (see
// internal/reload) and on SIGHUP. Set the fields before Run; a File runs
// once.
type File struct {
	// Path is the file or directory. Required.
	Path string
	// Debounce is the quiet period after a change; 0 means
	// reload.DefaultDebounce.
	Debounce time.Duration
	// Logger receives the watcher's logs; nil means none.
	Logger *zap.Logger
	// NoSignal turns off reloading on SIGHUP (tests that run several
	// sources in one process).
	NoSignal bool
}

var _ Source = (*File)(nil)

// Name returns "file".
func (f *File) Name() string { return "file" }

// Run watches Path, loads it once, and loads it again on each change or
// SIGHUP until ctx is done. The watch is set up before the first load,
// so no change between the two is missed. It returns an error when Path
// cannot be watched (before any load) or the watcher fails.
func (f *File) Run(ctx context.Context, u Updates) error {
	load := func() {
		cfg, err := descriptors.Load(f.Path)
		if err != nil {
			u.Refuse(err)
			return
		}
		u.Apply(cfg)
	}
	w, err := reload.New(reload.Options{Path: f.Path, Debounce: f.Debounce, Logger: f.Logger, OnChange: load})
	if err != nil {
		return fmt.Errorf("source: watching %s: %w", f.Path, err)
	}
	defer w.Close()
	load()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	if !f.NoSignal {
		wg.Add(1)
		go func() { defer wg.Done(); onSignal(ctx, syscall.SIGHUP, w.Trigger) }()
	}
	if err := w.Run(ctx); err != nil {
		return fmt.Errorf("source: watching %s: %w", f.Path, err)
	}
	return nil
}

// onSignal calls trigger on each sig until ctx is done.
func onSignal(ctx context.Context, sig os.Signal, trigger func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			trigger()
		}
	}
}
