// Package reload watches the rate-limit config on disk and calls back
// when it changes, so that the server can load the new rules without a
// restart.
//
// A Watcher watches the directory that holds the config (a file's parent
// directory, or the config directory itself) rather than the files, so
// that editors that save by writing a temporary file and renaming it over
// the original are noticed, and so are Kubernetes ConfigMap volumes: their
// visible files are symlinks through a "..data" symlink that the kubelet
// swaps atomically to a new timestamped directory. Symlinked config files
// are also followed to the directory of their target, and their resolved
// targets are checked periodically, so a symlink whose target changes is
// noticed even when no event reaches the watched directory.
package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// DefaultDebounce is the quiet period Options.Debounce defaults to.
const DefaultDebounce = 200 * time.Millisecond

// dataLink is the symlink a Kubernetes ConfigMap volume swaps on update.
const dataLink = "..data"

// resyncInterval is how often a Watcher re-adds watches that are missing
// (a directory that disappeared) and re-resolves symlinked config files.
const resyncInterval = time.Second

// maxWaitFactor bounds the delay of a change: a burst of events that never
// goes quiet still calls OnChange after maxWaitFactor × Debounce.
const maxWaitFactor = 10

// Options configure a Watcher. Path and OnChange are required.
type Options struct {
	// Path is the config: a file, or a directory of *.yaml and *.yml
	// files (as descriptors.Load reads them).
	Path string
	// Debounce is how long the config must stay quiet after an event
	// before OnChange is called, so that a burst of events (an editor's
	// save, a ConfigMap swap) makes one call. 0 means DefaultDebounce.
	Debounce time.Duration
	// Logger receives the watcher's logs; nil means none.
	Logger *zap.Logger
	// OnChange is called, from the goroutine running Run, after the
	// config changed or Trigger was called. Calls never overlap; events
	// arriving during a call lead to one more call after it.
	OnChange func()
}

// Watcher calls Options.OnChange when the config changes. Build one with
// New and run it with Run; Trigger and Close are safe to call from any
// goroutine, everything else belongs to Run's goroutine.
type Watcher struct {
	path     string // absolute
	isDir    bool
	debounce time.Duration
	log      *zap.Logger
	onChange func()

	fsw       *fsnotify.Watcher
	trigger   chan struct{}
	running   atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// Owned by the goroutine of New, then of Run.
	targets  map[string]map[string]bool // watched dir → names of interest (nil: config files of a directory)
	watched  map[string]bool            // dirs with an fsnotify watch
	resolved []string                   // resolved symlink targets at the last sync
	missing  bool                       // the main dir could not be watched at the last sync
}

// New returns a Watcher of opts.Path, which must exist. The watches are
// set up before New returns, so changes made between New and Run are
// not lost. Call Run, or Close if Run will not be called.
func New(opts Options) (*Watcher, error) {
	if opts.Path == "" {
		return nil, errors.New("reload: no path")
	}
	if opts.OnChange == nil {
		return nil, errors.New("reload: no OnChange")
	}
	if opts.Debounce < 0 {
		return nil, fmt.Errorf("reload: negative debounce %v", opts.Debounce)
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	w := &Watcher{
		path:     path,
		isDir:    fi.IsDir(),
		debounce: opts.Debounce,
		log:      opts.Logger,
		onChange: opts.OnChange,
		trigger:  make(chan struct{}, 1),
		watched:  map[string]bool{},
	}
	if w.debounce == 0 {
		w.debounce = DefaultDebounce
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	if w.fsw, err = fsnotify.NewWatcher(); err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	w.sync()
	if w.missing {
		w.fsw.Close()
		return nil, fmt.Errorf("reload: cannot watch %s", w.mainDir())
	}
	return w, nil
}

// Trigger asks for an OnChange call as if the config had changed (for
// SIGHUP). It does not block; triggers within one debounce period make
// one call.
func (w *Watcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default: // a trigger is already pending
	}
}

// Close releases the watches. Run closes the Watcher when it returns, so
// Close is needed only when Run is never called. It is safe to call more
// than once.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		if err := w.fsw.Close(); err != nil {
			w.closeErr = fmt.Errorf("reload: close: %w", err)
		}
	})
	return w.closeErr
}

// Run watches until ctx is done, calling OnChange after changes; it then
// closes the Watcher and returns nil. Errors of the file system watcher
// are logged and watching goes on; a watched directory that disappears is
// watched again when it reappears (checked every second), and its
// reappearance counts as a change. Run returns an error only when called
// twice or when the Watcher was closed.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("reload: Run called twice")
	}
	defer w.Close()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	ticker := time.NewTicker(resyncInterval)
	defer ticker.Stop()

	var pendingSince time.Time // zero: no change pending
	schedule := func(why string) {
		now := time.Now()
		if pendingSince.IsZero() {
			pendingSince = now
			w.log.Debug("config change noticed", zap.String("path", w.path), zap.String("cause", why))
		}
		delay := min(w.debounce, pendingSince.Add(maxWaitFactor*w.debounce).Sub(now))
		timer.Reset(max(delay, 0))
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("reload: watcher closed")
			}
			if w.dirGone(ev) {
				schedule("directory removed: " + ev.Name)
				continue
			}
			if w.relevant(ev) {
				schedule(ev.String())
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("reload: watcher closed")
			}
			w.log.Warn("config watcher error", zap.String("path", w.path), zap.Error(err))
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				schedule("event queue overflow")
			}
		case <-w.trigger:
			schedule("trigger")
		case <-ticker.C:
			if w.sync() {
				schedule("watch restored or symlink target changed")
			}
		case <-timer.C:
			pendingSince = time.Time{}
			w.sync()
			w.onChange()
		}
	}
}

// mainDir is the directory holding the config.
func (w *Watcher) mainDir() string {
	if w.isDir {
		return w.path
	}
	return filepath.Dir(w.path)
}

// dirGone handles the removal or renaming of a watched directory itself:
// the watch is dropped (the next sync restores it if the directory comes
// back) and it reports true.
func (w *Watcher) dirGone(ev fsnotify.Event) bool {
	if !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) || !w.watched[ev.Name] {
		return false
	}
	delete(w.watched, ev.Name)
	_ = w.fsw.Remove(ev.Name) // the kernel usually dropped it already
	if ev.Name == w.mainDir() {
		w.missing = true
		w.log.Warn("config directory disappeared; watching for its return", zap.String("dir", ev.Name))
	}
	return true
}

// relevant reports whether ev concerns the config: in a watched
// directory, a name of interest created, written, removed or renamed.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
		return false // chmod only
	}
	names, ok := w.targets[filepath.Dir(ev.Name)]
	if !ok {
		return false
	}
	name := filepath.Base(ev.Name)
	if names == nil {
		return isConfigName(name)
	}
	return names[name]
}

// isConfigName reports whether a name in a config directory matters: the
// ConfigMap data link, or a visible YAML file (the files descriptors.Load
// reads; editors' swap and backup files are not among them).
func isConfigName(name string) bool {
	if name == dataLink {
		return true
	}
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// sync computes the directories to watch (the main one and those of
// symlinked config files' targets), adds and removes watches to match,
// and reports whether something changed without an event: the main
// directory could be watched again after missing, or a resolved symlink
// target differs from the last sync.
func (w *Watcher) sync() bool {
	main := w.mainDir()
	targets := map[string]map[string]bool{}
	if w.isDir {
		targets[main] = nil
	} else {
		targets[main] = map[string]bool{filepath.Base(w.path): true, dataLink: true}
	}
	resolved := w.resolveLinks()
	for _, real := range resolved {
		dir := filepath.Dir(real)
		if dir == main {
			continue // already watched, and in a directory all config names count
		}
		if targets[dir] == nil {
			targets[dir] = map[string]bool{}
		}
		targets[dir][filepath.Base(real)] = true
	}
	w.targets = targets

	for dir := range w.watched {
		if _, ok := targets[dir]; !ok {
			_ = w.fsw.Remove(dir) // fails when the directory is gone, as wanted
			delete(w.watched, dir)
		}
	}
	wasMissing := w.missing
	for dir := range targets {
		if w.watched[dir] {
			continue
		}
		err := w.fsw.Add(dir)
		if err == nil {
			w.watched[dir] = true
			continue
		}
		if dir == main {
			if !w.missing {
				w.log.Warn("cannot watch the config directory; retrying", zap.String("dir", dir), zap.Error(err))
			}
			w.missing = true
		} else {
			w.log.Debug("cannot watch a symlink target directory", zap.String("dir", dir), zap.Error(err))
		}
	}
	if w.watched[main] {
		w.missing = false
	}
	restored := wasMissing && !w.missing
	if restored {
		w.log.Info("watching the config directory again", zap.String("dir", main))
	}
	changed := w.resolved != nil && !slices.Equal(w.resolved, resolved)
	w.resolved = resolved
	return restored || changed
}

// resolveLinks returns the resolved paths of the config files that are
// symlinks (the file itself, or the visible YAML files of the directory),
// sorted; unresolvable links and links to anything but a regular file
// are left out.
func (w *Watcher) resolveLinks() []string {
	var links []string
	if !w.isDir {
		links = []string{w.path}
	} else if entries, err := os.ReadDir(w.path); err == nil {
		for _, e := range entries {
			if e.Type()&os.ModeSymlink != 0 && e.Name() != dataLink && isConfigName(e.Name()) {
				links = append(links, filepath.Join(w.path, e.Name()))
			}
		}
	}
	resolved := []string{}
	for _, l := range links {
		fi, err := os.Lstat(l)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			continue
		}
		if st, err := os.Stat(real); err != nil || !st.Mode().IsRegular() {
			// A link to a device or a FIFO is no config file (the load
			// refuses it); its directory, /dev say, is not worth a watch.
			continue
		}
		resolved = append(resolved, real)
	}
	slices.Sort(resolved)
	return resolved
}
