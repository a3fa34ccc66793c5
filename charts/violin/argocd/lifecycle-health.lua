-- Argo CD health of a violin.dev DistributedSnapshot or SnapshotRestore: both
-- run once, from Pending to Succeeded or Failed. Read from the operator's
-- conditions, the same ones Flux reads through kstatus (docs/gitops.md).
local hs = {}
local status = obj.status
if status == nil or status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the violin operator to pick it up"
  return hs
end

local function condition(kind)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. stalled.message
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
-- Pending, in progress, or failed and still cleaning up (Reconciling, reason Aborting).
local reconciling = condition("Reconciling")
hs.status = "Progressing"
hs.message = (status.phase or "Pending")
if reconciling ~= nil and reconciling.message ~= (status.phase or "Pending") then
  hs.message = hs.message .. ": " .. reconciling.message
end
return hs
