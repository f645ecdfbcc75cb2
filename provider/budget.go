package provider

import (
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/hadron-ai/terraform-provider-hadron/internal/catalog"
)

// budgetTracker adds up the hourly prices of the instances planned by one
// provider process (one plan) and fails the plan once they exceed the
// provider's budget. Terraform plans every instance of a configuration in
// the same process, changed or not, so the sum covers them all.
type budgetTracker struct {
	max float64

	mu       sync.Mutex
	costs    map[string]float64
	reported bool
}

func newBudgetTracker(max float64) *budgetTracker {
	return &budgetTracker{max: max, costs: map[string]float64{}}
}

func (b *budgetTracker) add(name string, hourly float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.costs[name] = hourly
}

// check returns an error diagnostic the first time the total exceeds the
// budget.
func (b *budgetTracker) check(p path.Path) diag.Diagnostics {
	if b.max <= 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var costs []catalog.Cost
	for n, c := range b.costs {
		costs = append(costs, catalog.Cost{Name: n, HourlyPrice: c})
	}
	err := catalog.CheckBudget(b.max, costs)
	if err == nil || b.reported {
		return nil
	}
	b.reported = true
	var diags diag.Diagnostics
	diags.Append(attrError(p, "Budget Exceeded",
		"The Hadron instances of this plan cost more than the provider's budget.max_hourly_price: "+err.Error()+
			". Choose cheaper GPUs, fewer instances, or raise the budget."))
	return diags
}
