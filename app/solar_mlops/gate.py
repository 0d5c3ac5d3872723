"""The promotion gate: a challenger replaces the champion only if it is better on the
same time-ordered holdout by a configured margin."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Relative nRMSE improvement a challenger must show: 1 % of the champion's error.
DEFAULT_MARGIN = 0.01


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    challenger_version: str
    challenger_nrmse: float
    champion_version: str | None
    champion_nrmse: float | None
    margin: float
    holdout_window: str
    holdout_rows: int

    @property
    def verdict(self) -> str:
        return "promoted" if self.promote else "refused"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "verdict": self.verdict}


def decide(
    challenger_version: str,
    challenger_nrmse: float,
    champion_version: str | None,
    champion_nrmse: float | None,
    margin: float,
    holdout_window: str,
    holdout_rows: int,
) -> GateDecision:
    """Pure decision from two scores on the same rows; the reason says which rule fired."""
    if not 0 <= margin < 1:
        raise ValueError(f"gate margin must be in [0, 1), got {margin}")

    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(
            promote=promote,
            reason=reason,
            challenger_version=challenger_version,
            challenger_nrmse=challenger_nrmse,
            champion_version=champion_version,
            champion_nrmse=champion_nrmse,
            margin=margin,
            holdout_window=holdout_window,
            holdout_rows=holdout_rows,
        )

    if champion_version is None or champion_nrmse is None:
        return decision(True, "no champion yet: first model")
    if challenger_version == champion_version:
        return decision(False, "already the champion")
    required = champion_nrmse * (1 - margin)
    improvement = 1 - challenger_nrmse / champion_nrmse
    if challenger_nrmse <= required:
        reason = (
            f"nRMSE {challenger_nrmse:.4f} beats champion v{champion_version} "
            f"({champion_nrmse:.4f}) by {improvement:.2%}, margin {margin:.2%}"
        )
        return decision(True, reason)
    reason = (
        f"nRMSE {challenger_nrmse:.4f} is not better than champion v{champion_version} "
        f"({champion_nrmse:.4f}) by the required {margin:.2%} "
        f"(improvement {improvement:.2%}, needed nRMSE <= {required:.4f})"
    )
    return decision(False, reason)
