// Package balance selects a backend from an immutable candidate list.
// It is pure: the caller supplies which candidates to skip and the random
// number, so selection never blocks, never does I/O and is easy to test.
package balance

// MaxCandidates is the most backends one selection can span (one bit each in a Set).
const MaxCandidates = 64

// Set is a set of candidate indexes, one bit each.
type Set uint64

// Has reports whether i is in the set.
func (s Set) Has(i int) bool { return s&(1<<uint(i)) != 0 }

// With returns the set with i added.
func (s Set) With(i int) Set { return s | 1<<uint(i) }

// Candidate is one backend as selection sees it.
type Candidate struct {
	// Weight is the relative share within its priority group; 0 means the
	// candidate is drawn only when every candidate left in its group has weight 0.
	Weight float64
	// Priority groups candidates: the lowest number that has an eligible
	// candidate wins.
	Priority int
}

// best returns the lowest priority among candidates not in skip.
func best(cands []Candidate, skip Set) (int, bool) {
	p, found := 0, false
	for i := range cands {
		if skip.Has(i) {
			continue
		}
		if !found || cands[i].Priority < p {
			p, found = cands[i].Priority, true
		}
	}
	return p, found
}

// Pick draws one candidate not in skip: from the best (lowest-numbered)
// priority group that has one, by weight within the group (weights
// renormalised over those not skipped). rnd is a uniform random 64-bit number.
// ok is false when every candidate is skipped.
func Pick(cands []Candidate, skip Set, rnd uint64) (idx int, ok bool) {
	prio, found := best(cands, skip)
	if !found {
		return -1, false
	}
	total, n := 0.0, 0
	for i := range cands {
		if !skip.Has(i) && cands[i].Priority == prio {
			total += max(cands[i].Weight, 0)
			n++
		}
	}
	if total <= 0 {
		// Every eligible weight is zero: draw uniformly among them.
		k := int(rnd % uint64(n))
		for i := range cands {
			if !skip.Has(i) && cands[i].Priority == prio {
				if k == 0 {
					return i, true
				}
				k--
			}
		}
	}
	r := float64(rnd>>11) / (1 << 53) * total
	last := -1
	for i := range cands {
		if skip.Has(i) || cands[i].Priority != prio || cands[i].Weight <= 0 {
			continue
		}
		last = i
		r -= cands[i].Weight
		if r < 0 {
			return i, true
		}
	}
	return last, last >= 0
}

// PickLeast returns the candidate not in skip, in the best priority group,
// with the lowest load per unit of weight (load[i]/weight); ties are broken
// by rnd. Weight-zero candidates count as weight 1e-9.
func PickLeast(cands []Candidate, load []float64, skip Set, rnd uint64) (idx int, ok bool) {
	prio, found := best(cands, skip)
	if !found {
		return -1, false
	}
	idx = -1
	bestScore, ties := 0.0, 0
	for i := range cands {
		if skip.Has(i) || cands[i].Priority != prio {
			continue
		}
		score := load[i] / max(cands[i].Weight, 1e-9)
		switch {
		case idx < 0 || score < bestScore:
			idx, bestScore, ties = i, score, 1
		case score == bestScore:
			ties++
			// Reservoir sampling over the tied candidates.
			if rnd%uint64(ties) == 0 {
				idx = i
			}
			rnd /= uint64(ties)
		}
	}
	return idx, true
}
