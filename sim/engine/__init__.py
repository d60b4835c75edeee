"""Engine: per-op plans (cycles, bytes, pJ) and the trace gate, the simpy schedule, the timeline writer."""
from .plan import (
                   MAX_BATCH,
                   MAX_CONTEXT,
                   MAX_TRACE_ROWS,
                   MAX_TRACE_VALUE,
                   SUPPORTED_BITS,
                   OpPlan,
                   check_trace,
                   check_trace_metadata,
                   plan_ops,
)
from .scheduler import OpTiming, RunLog, dma_tiles, schedule_ops
from .timeline import check_timeline_path, write_chrome_trace

__all__ = ["MAX_BATCH", "MAX_CONTEXT", "MAX_TRACE_ROWS", "MAX_TRACE_VALUE", "SUPPORTED_BITS", "OpPlan", "OpTiming",
           "RunLog", "check_timeline_path", "check_trace", "check_trace_metadata", "dma_tiles", "plan_ops",
           "schedule_ops", "write_chrome_trace"]
