"""Engine: per-op plans (cycles, bytes, pJ), the simpy schedule, and the timeline writer."""
from .plan import OpPlan, check_trace, plan_ops
from .scheduler import OpTiming, RunLog, run
from .timeline import write_chrome_trace

__all__ = ["OpPlan", "OpTiming", "RunLog", "check_trace", "plan_ops", "run", "write_chrome_trace"]
