package catalog

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestCheckBudget(t *testing.T) {
	costs := []Cost{
		{"hadron_gpu_instance.small", 1.006},
		{"hadron_gpu_instance.trainer", 21.96},
		{"hadron_gpu_instance.b", 2.5},
		{"hadron_gpu_instance.a", 2.5},
	}
	tests := []struct {
		name    string
		max     float64
		costs   []Cost
		wantErr string
		wantTop []string
	}{
		{"no budget", 0, costs, "", nil},
		{"within", 30, costs, "", nil},
		{"exactly at the budget", 27.966, costs, "", nil},
		{"no costs", 1, nil, "", nil},
		{
			"exceeded", 20, costs,
			"hourly price $27.966/h of 4 items exceeds the budget of $20.00/h by $7.966/h; biggest: hadron_gpu_instance.trainer $21.96/h (79%), hadron_gpu_instance.a $2.50/h (9%), hadron_gpu_instance.b $2.50/h (9%)",
			[]string{"hadron_gpu_instance.trainer", "hadron_gpu_instance.a", "hadron_gpu_instance.b"},
		},
		{
			"single item", 1, costs[:1],
			"hourly price $1.006/h of 1 item exceeds the budget of $1.00/h by $0.006/h; biggest: hadron_gpu_instance.small $1.006/h (100%)",
			[]string{"hadron_gpu_instance.small"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBudget(tt.max, tt.costs)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("CheckBudget = %v, want nil", err)
				}
				return
			}
			var be *BudgetError
			if !errors.As(err, &be) {
				t.Fatalf("CheckBudget = %v, want a *BudgetError", err)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error =\n  %s\nwant\n  %s", err, tt.wantErr)
			}
			var top []string
			for _, c := range be.Top {
				top = append(top, c.Name)
			}
			if !reflect.DeepEqual(top, tt.wantTop) {
				t.Errorf("Top = %v, want %v", top, tt.wantTop)
			}
			if math.Abs(be.Total-SumCosts(tt.costs)) > 1e-9 {
				t.Errorf("Total = %v, want %v", be.Total, SumCosts(tt.costs))
			}
		})
	}
}

func TestCheckBudgetRejectsBadNumbers(t *testing.T) {
	tests := []struct {
		name  string
		max   float64
		costs []Cost
		want  string
	}{
		{"negative budget", -1, nil, "budget max hourly price -1"},
		{"NaN budget", math.NaN(), nil, "budget max hourly price NaN"},
		{"negative price", 10, []Cost{{"x", -2}}, "hourly price -2 of x"},
		{"infinite price", 10, []Cost{{"y", math.Inf(1)}}, "hourly price +Inf of y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBudget(tt.max, tt.costs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckBudget error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
