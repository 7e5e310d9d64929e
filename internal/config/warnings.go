package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Warnings returns what a careful operator would want to know about a
// valid config: settings that load and run but are unlikely to do what was
// meant. None of them stops the gateway. c must be defaulted (as Load and
// Parse return it). The order is stable: keys, aliases, backends, routing.
func (c *Config) Warnings() []Problem {
	var out []Problem
	add := func(path, format string, args ...any) {
		out = append(out, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	wildcard := false // some backend serves every name
	served := map[string]bool{}
	for _, b := range c.Backends {
		if b.Deployments == nil {
			wildcard = true
		}
		for name := range b.Deployments {
			served[name] = true
		}
	}
	// usable reports whether a name a client sends reaches some backend.
	usable := func(name string) bool {
		if wildcard || served[name] {
			return true
		}
		to, ok := c.Aliases[name]
		return ok && served[to]
	}

	for i, k := range c.Keys {
		if k.Models == nil {
			continue
		}
		p := fmt.Sprintf("keys[%d].models", i)
		if len(k.Models) == 0 {
			add(p, "key %q has access to nothing: its models list is empty", k.Name)
			continue
		}
		if !slices.ContainsFunc(k.Models, usable) {
			add(p, "key %q has access to nothing: no backend serves any of %s", k.Name, strings.Join(k.Models, ", "))
		}
	}

	if !wildcard {
		for _, name := range slices.Sorted(maps.Keys(c.Aliases)) {
			if to := c.Aliases[name]; !served[to] {
				add("aliases."+name, "alias %q leads to %q, which no backend serves: requests for it get 404 (and it is not listed in /v1/models)", name, to)
			}
		}
	}

	for i, b := range c.Backends {
		p := fmt.Sprintf("backends[%d]", i)
		if b.Deployments != nil && len(b.Deployments) == 0 {
			add(p+".deployments", "backend %q serves no route: its deployments mapping is empty", b.Name)
			continue
		}
		if !c.anyKeyUses(b) {
			add(p+".deployments", "backend %q serves no route any key may use: no key lists any of its deployments (%s)",
				b.Name, strings.Join(slices.Sorted(maps.Keys(b.Deployments)), ", "))
		}
	}

	out = append(out, c.zeroWeightGroups()...)
	return out
}

// anyKeyUses reports whether some client key may call a name backend b serves.
func (c *Config) anyKeyUses(b Backend) bool {
	for _, k := range c.Keys {
		if k.Models == nil || b.Deployments == nil {
			return true // the key may use every name, or the backend serves every name
		}
		for _, m := range k.Models {
			if _, ok := b.Deployments[m]; ok {
				return true
			}
			if to, ok := c.Aliases[m]; ok {
				if _, ok := b.Deployments[to]; ok {
					return true
				}
			}
		}
	}
	return false
}

// zeroWeightGroups finds priority groups, per route, whose weights sum to
// zero: weights then mean nothing and traffic is split evenly among them.
func (c *Config) zeroWeightGroups() []Problem {
	// Each route is a name and the backends serving it; a backend without a
	// deployments mapping serves every route.
	routes := map[string][]int{}
	var wild []int
	for i, b := range c.Backends {
		if b.Deployments == nil {
			wild = append(wild, i)
		}
	}
	for i, b := range c.Backends {
		for name := range b.Deployments {
			routes[name] = append(routes[name], i)
		}
	}
	for name, members := range routes {
		routes[name] = append(members, wild...)
	}
	if len(wild) > 0 {
		routes["*"] = wild
	}
	seen := map[string]bool{} // member lists already reported
	var out []Problem
	for _, name := range slices.Sorted(maps.Keys(routes)) {
		groups := map[int][]int{}
		for _, i := range routes[name] {
			p := c.Backends[i].Priority
			groups[p] = append(groups[p], i)
		}
		for _, prio := range slices.Sorted(maps.Keys(groups)) {
			members := groups[prio]
			sum := 0
			names := make([]string, 0, len(members))
			for _, i := range members {
				sum += c.Backends[i].EffectiveWeight()
				names = append(names, c.Backends[i].Name)
			}
			slices.Sort(names)
			id := fmt.Sprint(prio, names)
			if sum != 0 || seen[id] {
				continue
			}
			seen[id] = true
			where := ""
			if name != "*" {
				where = fmt.Sprintf(" for %q", name)
			}
			msg := fmt.Sprintf("weights of priority group %d%s sum to zero (%s): weights are ignored and traffic is split evenly",
				prio, where, strings.Join(names, ", "))
			if len(names) == 1 {
				msg = fmt.Sprintf("weights of priority group %d%s sum to zero: its only backend %s has weight 0 yet takes all of the group's traffic",
					prio, where, names[0])
			}
			out = append(out, Problem{Path: "backends", Message: msg})
		}
	}
	return out
}
