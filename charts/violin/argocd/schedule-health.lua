-- Argo CD health of a violin.dev SnapshotSchedule, which never ends: Healthy
-- while it takes its runs, Suspended when spec.suspend holds them back, and
-- Degraded when it cannot take them (Stalled: a bad cron, a refused snapshot)
-- or its newest finished snapshot failed, as Argo CD treats a CronJob whose
-- last Job failed.
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
local degraded = condition("Degraded")
local ready = condition("Ready")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. stalled.message
elseif degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.reason .. ": " .. degraded.message
elseif ready ~= nil and ready.status == "True" and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = ready.message
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
else
  hs.status = "Progressing"
  hs.message = "Waiting for the schedule to be Ready"
end
return hs
