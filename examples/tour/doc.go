// Package tour keeps the README's code runnable: its five-minute tour is
// Example in example_test.go, the redistest snippet is TestOpenAccount, and
// TestREADMECode checks that every Go block of the README is, line for line,
// in one of the repository's Example functions or tests.
package tour
