package catalog

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Cost is one priced item of a plan, e.g. an instance resource.
type Cost struct {
	Name        string
	HourlyPrice float64 // USD/h
}

// BudgetTopN is how many of the biggest contributors a BudgetError names.
const BudgetTopN = 3

// BudgetError is returned by CheckBudget when the total exceeds the maximum.
type BudgetError struct {
	Max   float64
	Total float64
	Count int
	// Top holds the biggest contributors, most expensive first.
	Top []Cost
}

// Error names the total, the budget, the excess and the biggest contributors.
func (e *BudgetError) Error() string {
	parts := make([]string, len(e.Top))
	for i, c := range e.Top {
		parts[i] = fmt.Sprintf("%s %s (%.0f%%)", c.Name, FormatPrice(c.HourlyPrice), 100*c.HourlyPrice/e.Total)
	}
	noun := "items"
	if e.Count == 1 {
		noun = "item"
	}
	return fmt.Sprintf("hourly price %s of %d %s exceeds the budget of %s by %s; biggest: %s",
		FormatPrice(e.Total), e.Count, noun, FormatPrice(e.Max), FormatPrice(e.Total-e.Max), strings.Join(parts, ", "))
}

// SumCosts returns the total hourly price.
func SumCosts(costs []Cost) float64 {
	var t float64
	for _, c := range costs {
		t += c.HourlyPrice
	}
	return t
}

// CheckBudget returns a *BudgetError when the costs together exceed
// maxHourly (USD/h), naming the total and the biggest contributors. A
// maxHourly of zero means no budget. A negative or non-finite price is an
// error.
func CheckBudget(maxHourly float64, costs []Cost) error {
	if maxHourly < 0 || math.IsNaN(maxHourly) || math.IsInf(maxHourly, 0) {
		return fmt.Errorf("budget max hourly price %v must be a non-negative number", maxHourly)
	}
	for _, c := range costs {
		if c.HourlyPrice < 0 || math.IsNaN(c.HourlyPrice) || math.IsInf(c.HourlyPrice, 0) {
			return fmt.Errorf("hourly price %v of %s must be a non-negative number", c.HourlyPrice, c.Name)
		}
	}
	if maxHourly == 0 {
		return nil
	}
	total := SumCosts(costs)
	// Prices carry four decimals; compare with a tolerance so that a total
	// equal to the budget up to float rounding passes.
	if total <= maxHourly+1e-9 {
		return nil
	}
	sorted := append([]Cost(nil), costs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].HourlyPrice != sorted[j].HourlyPrice {
			return sorted[i].HourlyPrice > sorted[j].HourlyPrice
		}
		return sorted[i].Name < sorted[j].Name
	})
	if len(sorted) > BudgetTopN {
		sorted = sorted[:BudgetTopN]
	}
	return &BudgetError{Max: maxHourly, Total: total, Count: len(costs), Top: sorted}
}
