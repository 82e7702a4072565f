package dinit

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestService_KernelConstraints(t *testing.T) {
	agent := func(id, zone string) map[string]string { return map[string]string{"dcos.agent": id, "zone": zone} }
	agents := []map[string]string{agent("a1", "a"), agent("a2", "a"), agent("a3", "b"), agent("a4", "c")}
	ne := func(label, v string) *pb.Constraint {
		return &pb.Constraint{Label: label, Op: pb.Constraint_OP_NOT_EQUALS, Values: []string{v}}
	}
	in := func(label string, v ...string) *pb.Constraint {
		return &pb.Constraint{Label: label, Op: pb.Constraint_OP_IN, Values: v}
	}
	tests := []struct {
		name   string
		cons   []Constraint
		placed []map[string]string
		want   []*pb.Constraint
	}{
		{"kernel ops pass through", []Constraint{{Label: "zone", Op: OpEquals, Value: "a"}, {Label: "disk", Op: OpNotEquals, Value: "hdd"}, {Label: "zone", Op: OpIn, Values: []string{"a", "b"}}}, nil,
			[]*pb.Constraint{{Label: "zone", Op: pb.Constraint_OP_EQUALS, Values: []string{"a"}}, ne("disk", "hdd"), in("zone", "a", "b")}},
		{"unique none placed", []Constraint{{Label: "dcos.agent", Op: OpUnique}}, nil, nil},
		{"unique per agent", []Constraint{{Label: "dcos.agent", Op: OpUnique}}, []map[string]string{agents[2], agents[0]},
			[]*pb.Constraint{ne("dcos.agent", "a1"), ne("dcos.agent", "a3")}},
		{"max per zone", []Constraint{{Label: "zone", Op: OpMaxPer, Max: 2}}, []map[string]string{agents[0], agents[1], agents[2]},
			[]*pb.Constraint{ne("zone", "a")}},
		{"group by zone", []Constraint{{Label: "zone", Op: OpGroupBy}}, []map[string]string{agents[0], agents[2]},
			[]*pb.Constraint{in("zone", "c")}},
		{"group by zone balanced", []Constraint{{Label: "zone", Op: OpGroupBy}}, []map[string]string{agents[0], agents[2], agents[3]},
			[]*pb.Constraint{in("zone", "a", "b", "c")}},
		{"group by unknown label", []Constraint{{Label: "rack", Op: OpGroupBy}}, nil, []*pb.Constraint{in("rack", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Service{Constraints: tt.cons}
			got := s.KernelConstraints(tt.placed, agents)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("constraints (-want +got):\n%s", diff)
			}
		})
	}
}
