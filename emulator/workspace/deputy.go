package workspace

import (
	"cmp"
	"slices"
	"strings"
)

// An app resource of type app gives the app's service principal CAN USE on the target app, and the app calls the
// target as itself, whoever called the app: the app is a deputy of its callers. Whoever may use the app may then use
// the target through it, CAN USE on the target or not, unless the app itself checks who may reach what. That is a
// confused deputy when the model did not mean it; the default model grants caller-app only to principals that may
// use api-app. The workspace cannot tell what a model means, so it says what it lets happen, at start.

// deputyPath is a way to an app that some principals have only through another app.
type deputyPath struct {
	app     string   // the app they reach
	through []string // the apps in between, the first one being the one they may use
	who     []string // the principals: user names and service principal names
}

// confusedDeputies lists, for each app a principal may not use but reaches through the app resources of apps it
// may use, who and through which apps, in the order of the model's apps.
func (m *appManager) confusedDeputies() []deputyPath {
	m.mu.Lock()
	order := slices.Clone(m.order)
	settings := make(map[string]*appSettings, len(order))
	for _, name := range order {
		settings[name] = m.byName[name].settings()
	}
	m.mu.Unlock()

	var paths []deputyPath
	add := func(app string, through []string, who string) {
		i := slices.IndexFunc(paths, func(d deputyPath) bool { return d.app == app && slices.Equal(d.through, through) })
		if i < 0 {
			paths = append(paths, deputyPath{app: app, through: through})
			i = len(paths) - 1
		}
		paths[i].who = append(paths[i].who, who)
	}
	for _, p := range m.dir.everyone() {
		// Walk the app resources from every app p may use; the first path found to each app is the one reported.
		reached := map[string][]string{} // app -> the apps in between
		var queue []string
		for _, name := range order {
			if mayUse(settings[name], p) {
				reached[name] = nil
				queue = append(queue, name)
			}
		}
		for len(queue) > 0 {
			from := queue[0]
			queue = queue[1:]
			for _, r := range settings[from].resources {
				if r.App == nil || settings[r.App.Name] == nil {
					continue
				}
				if _, seen := reached[r.App.Name]; seen {
					continue
				}
				reached[r.App.Name] = append(slices.Clone(reached[from]), from)
				queue = append(queue, r.App.Name)
			}
		}
		for _, name := range order {
			if through, ok := reached[name]; ok && len(through) > 0 {
				add(name, through, cmp.Or(p.SPName, p.UserName)) // as the model names it
			}
		}
	}
	return paths
}

// warnConfusedDeputies logs each way to an app that some principals have only through other apps.
func (m *appManager) warnConfusedDeputies() {
	for _, d := range m.confusedDeputies() {
		m.logger.Warn("confused deputy: principals without CAN USE on an app reach it through apps they may use, "+
			"which call it as their own service principal; grant those apps only to who may use the app, or check "+
			"the caller in them", "app", d.app, "through", strings.Join(d.through, " > "), "principals",
			strings.Join(d.who, ", "))
	}
}
