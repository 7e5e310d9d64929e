//go:build race

package h1_test

// raceEnabled: the race detector drops sync.Pool items at random, which
// allocation budgets cannot count on.
const raceEnabled = true
